"""Run one emulator standalone: `python -m connectors.emulators SERVICE --port N --token T ...`.

Prints the API base URL, the control URL and the accepted tokens' last four characters, then serves
until SIGINT or SIGTERM. `--list` names the services. A non-loopback `--host` is refused unless
`--allow-remote` is given: an emulator accepts whatever tokens it was told to, so it must not be
reachable from other machines by accident.

Example::

    python -m connectors.emulators github --port 8081 --token ghp_demo123 --rate-limit 60 --rate-window 60
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from . import EMULATORS
from .base import CONTROL_PREFIX, Emulator, EmulatorInputError, describe, hint


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m connectors.emulators",
                                description="Run a provider emulator on this machine.")
    p.add_argument("service", nargs="?", help="one of: " + ", ".join(sorted(EMULATORS)))
    p.add_argument("--list", action="store_true", help="list the services and exit")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port (default 0: pick a free one)")
    p.add_argument("--token", action="append", default=[], help="a token to accept (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of generated data and random faults")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every API response")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with a 5xx")
    p.add_argument("--reset-rate", type=float, default=0.0, help="share of connections dropped")
    p.add_argument("--rate-limit", type=int, help="requests per window per token (replaces the provider's)")
    p.add_argument("--rate-window", type=float, help="window length in seconds (with --rate-limit)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    return p


def configure(args: argparse.Namespace) -> Emulator:
    """Build the emulator the arguments describe; EmulatorInputError names a bad argument."""
    if args.service not in EMULATORS:
        raise EmulatorInputError(f"unknown service {args.service!r}; choose one of {', '.join(sorted(EMULATORS))}")
    if not args.token:
        raise EmulatorInputError("give at least one --token")
    if args.rate_window is not None and args.rate_limit is None:
        raise EmulatorInputError("--rate-window needs --rate-limit")
    emu = EMULATORS[args.service](tokens=args.token, seed=args.seed)
    try:
        emu.faults.latency = args.latency
        emu.faults.error_rate = args.error_rate
        emu.faults.reset_rate = args.reset_rate
    except ValidationError as exc:
        raise EmulatorInputError(describe(exc, "fault knob")) from None
    if args.rate_limit is not None:
        emu.set_rate_limit(args.rate_limit, args.rate_window or emu.default_rate[1])
    return emu


async def serve(emu: Emulator, host: str, port: int, allow_remote: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    base = await emu.start(host, port, allow_remote=allow_remote)
    try:
        print(f"{emu.service} emulator listening: {base}", flush=True)
        print(f"control API: {emu.origin}{CONTROL_PREFIX}/state", flush=True)
        print("accepted tokens: " + ", ".join(hint(t) for t in emu.tokens.active()), flush=True)
        await stop.wait()
    finally:
        await emu.stop()
        print(f"{emu.service} emulator stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list:
        for name, cls in sorted(EMULATORS.items()):
            print(f"{name}\t{cls.prefixes[0] or '/'}")
        return 0
    try:
        emu = configure(args)
        asyncio.run(serve(emu, args.host, args.port, args.allow_remote))
    except EmulatorInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
