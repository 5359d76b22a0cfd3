"""The event-sink methods' params and results (``events.sinks``, ``events.replay``); see integd.sinks.

Error codes of this feature (the table of every code is in integd.api)::

    -32011 sink_not_found   events.replay named a sink that is not configured
    -32012 replay_refused   events.replay asked to move a sink's cursor forward (that would skip events)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from integd.api import Params, Result


class SinkStatus(Result):
    name: str
    url: str = Field(..., description="The sink's URL with credentials (userinfo, secret query values) redacted.")
    events: list[str] = Field(..., description="Event types delivered, or [\"*\"] for all.")
    cursor: int = Field(..., description="seq of the last event the sink acknowledged.")
    lag: int = Field(..., description="Events (of the sink's types) committed after the cursor, not yet delivered.")
    state: Literal["healthy", "failing"] = Field(
        ..., description="failing: deliveries have failed for longer than the failing threshold.")
    failures: int = Field(..., description="Consecutive failed attempts (0 after a success).")
    last_error: str | None
    last_success: float | None
    last_attempt: float | None
    failing_since: float | None
    next_attempt_at: float | None = Field(..., description="When the next retry is due, while backing off.")


class ReplayParams(Params):
    sink: str = Field(..., min_length=1, max_length=200, description="The sink's name ([sinks.NAME]).")
    after: int = Field(..., ge=0, description="Deliver again every event with seq > after (0: the whole outbox).")


class ReplayResult(Result):
    sink: str
    previous_cursor: int
    cursor: int
    to_deliver: int = Field(..., description="Events (of the sink's types) now queued for delivery.")
