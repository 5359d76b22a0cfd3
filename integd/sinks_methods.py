"""RPC methods of the event sinks: ``events.sinks`` (admins and service principals) and ``events.replay``
(admins only). They only map between the wire models (integd.api_sinks) and :class:`integd.sinks.Sinks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from integd import api, api_sinks
from integd.rpc.registry import CallContext, MethodRegistry

if TYPE_CHECKING:
    from integd.sinks import Sinks


def register_methods(reg: MethodRegistry, sinks: Sinks) -> None:
    """Add ``events.sinks`` and ``events.replay`` to ``reg``."""

    @reg.method("events.sinks", api.NoParams, list[api_sinks.SinkStatus],
                summary="Admins: each event sink's cursor, lag, last error and state (healthy|failing).",
                errors=((api.ACCESS_DENIED, "access_denied"),), tags=("events",))
    async def events_sinks(ctx: CallContext, p: api.NoParams) -> list[dict[str, Any]]:
        if ctx.principal.kind not in ("admin", "service"):
            raise PermissionError("only an admin or a service principal may list event sinks")
        return await sinks.status()

    @reg.method("events.replay", api_sinks.ReplayParams, api_sinks.ReplayResult,
                summary="Admins: move a sink's cursor back so its events after `after` are delivered again.",
                errors=((api.ACCESS_DENIED, "access_denied"), (api.SINK_NOT_FOUND, "sink_not_found"),
                        (api.REPLAY_REFUSED, "replay_refused")), tags=("events",))
    async def events_replay(ctx: CallContext, p: api_sinks.ReplayParams) -> dict[str, Any]:
        if not ctx.principal.is_admin:
            raise PermissionError("only an admin may replay events to a sink")
        deliverer = sinks.get(p.sink)
        previous = await deliverer.replay(p.after)
        return {"sink": p.sink, "previous_cursor": previous, "cursor": p.after,
                "to_deliver": await deliverer.lag()}
