"""Connectors: the service abstraction, the catalogue of fifteen services, the HTTP machinery (rate limits,
retries, error classification, pagination) and one module per implemented provider.

Imports allowed here: ``domain``, aiohttp, authlib, tenacity. Never ``integd``: the daemon
composes these pieces (one HttpTransport, one CallGate per app, ``build_connector`` per app) and logs the
CallRecords handed to its observer.

>>> from connectors import SERVICES, build_connector, ApiRequest
>>> sorted(SERVICES)[:3]
['discord', 'dropbox', 'github']
"""

from connectors.base import (AccountIdentity, ApiRequest, ApiResponse, CallObserver, CallRecord, Connector,
                             RateSignal, ServiceDescriptor)
from connectors.catalogue import SERVICES, get_service
from connectors.factory import CONNECTORS, build_connector, connector_class
from connectors.http import HttpTransport, RawResponse
from connectors.limits import CallGate, MemoryQuotaStore, PlanBudget, QuotaStore, QuotaWindow, WindowUsage
from connectors.retry import is_transient, retrying

__all__ = [
    "AccountIdentity", "ApiRequest", "ApiResponse", "CONNECTORS", "CallGate", "CallObserver", "CallRecord",
    "Connector", "HttpTransport", "MemoryQuotaStore", "PlanBudget", "QuotaStore", "QuotaWindow", "RateSignal",
    "RawResponse", "SERVICES", "ServiceDescriptor", "WindowUsage", "build_connector", "connector_class",
    "get_service", "is_transient", "retrying",
]
