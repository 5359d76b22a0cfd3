"""Shared by the stream tests: pull a stream to the end of its pass into a dict, as the runner would store it."""

from __future__ import annotations

from typing import Any

from connectors.streams.base import Stream


async def drain(s: Stream, cursor: dict[str, Any], store: dict[str, dict], seen: set[str] | None = None
                ) -> tuple[dict[str, Any], int]:
    """Follow pages until the pass is done; tombstones remove records. Returns (cursor, pages read)."""
    pages = 0
    while True:
        page = await s.pull(cursor)
        pages += 1
        for r in page.records:
            if r.deleted:
                store.pop(r.remote_id, None)
            else:
                store[r.remote_id] = r.data
            if seen is not None:
                seen.add(r.remote_id)
        cursor = page.cursor
        if page.done:
            return cursor, pages
