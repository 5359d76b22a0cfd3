"""``integd``: run the daemon, the demo, or inspect the configuration.

    integd [serve] [--config FILE] [--state-dir DIR] [--socket PATH]
    integd demo [--state-dir DIR] [--headless]
    integd config show [--config FILE]
    integd config check FILE
    integd backup FILE            (while the daemon runs; see integd.backup)
    integd restore FILE           (only while no daemon runs on the state directory)
    integd --version
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from integd import __version__
from integd.config import ConfigError, check_config_file, load_config, redacted, resolve_paths
from integd.logging import configure_logging
from integd.rpc.server import SocketInUse
from integd.store.db import StoreError
from integd.vault import VaultError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="integd", description="The integd integration daemon.")
    p.add_argument("--version", action="version", version=f"integd {__version__}")
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--state-dir", type=Path, help="where the database and generated key live")
    p.add_argument("--socket", type=Path, help="the Unix socket to serve the JSON-RPC API on")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the daemon in the foreground (the default)")
    demo = sub.add_parser("demo", help="run the daemon with in-process emulators and demo apps")
    demo.add_argument("--state-dir", dest="demo_state_dir", type=Path, help="keep the demo's state here")
    demo.add_argument("--headless", action="store_true", help="do not open the dashboard")
    cfg = sub.add_parser("config", help="show or check the configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    cfg_sub.add_parser("show", help="print the effective configuration (secrets redacted)")
    check = cfg_sub.add_parser("check", help="explain what is wrong with a configuration file")
    check.add_argument("file", type=Path)
    bk = sub.add_parser("backup", help="write a consistent copy of the store (safe while the daemon runs)")
    bk.add_argument("file", type=Path)
    rs = sub.add_parser("restore", help="replace the store with a backup (refused while a daemon runs)")
    rs.add_argument("file", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "config":
            return _config(args)
        if args.command == "demo":
            return _demo(args)
        if args.command in ("backup", "restore"):
            return _backup_or_restore(args)
        return _serve(args)
    except ConfigError as e:
        print(f"integd: configuration error: {e}", file=sys.stderr)
        return 78   # EX_CONFIG: systemd will not restart-loop on it
    except (VaultError, StoreError, SocketInUse) as e:
        print(f"integd: cannot start: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more, and keep the interpreter's flush at exit quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    if args.state_dir:
        env["INTEGD_STATE_DIR"] = str(args.state_dir.absolute())
    if args.socket:
        env["INTEGD_SOCKET"] = str(args.socket.absolute())
    return env


def _serve(args: argparse.Namespace) -> int:
    from integd.daemon import serve  # noqa: PLC0415

    env = _overrides(args)
    config = load_config(args.config, env=env)
    configure_logging(config.daemon.log_level, config.daemon.log_format)
    paths = resolve_paths(config, env=env)
    return asyncio.run(serve(config, paths, config_path=args.config, env=env))


def _demo(args: argparse.Namespace) -> int:
    from integd.demo import run_demo, want_headless  # noqa: PLC0415

    headless = want_headless(args.headless)
    state_dir = args.demo_state_dir or args.state_dir
    if state_dir is not None:
        state_dir = state_dir.absolute()
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if headless:
        configure_logging("info", "auto")
        return asyncio.run(run_demo(state_dir, headless=True))
    # The dashboard owns the terminal: the daemon's log goes to a file beside the state (or in /tmp).
    log_path = (state_dir or Path(tempfile.gettempdir())) / f"integd-demo-{os.getpid()}.log"
    with open(log_path, "a", encoding="utf-8") as log_file:
        configure_logging("info", "json", stream=log_file)
        code = asyncio.run(run_demo(state_dir, headless=False))
    print(f"integd demo stopped; its log is in {log_path}")
    return code


def _backup_or_restore(args: argparse.Namespace) -> int:
    from integd.backup import MASTER_KEY_NOTE, BackupError, backup, restore  # noqa: PLC0415

    env = _overrides(args)
    paths = resolve_paths(load_config(args.config, env=env), env=env)
    try:
        if args.command == "backup":
            r = backup(paths.state_dir, args.file)
            print(f"backup written to {r['file']} ({r['bytes']} bytes, schema {r['schema_version']}, "
                  f"{r['apps']} apps, {r['events']} events, integrity {r['integrity']})")
        else:
            r = restore(args.file, paths.state_dir)
            kept = f"; the previous store is kept as {r['previous']}" if r["previous"] else ""
            print(f"restored {r['file']} to {r['restored_to']} (schema {r['schema_version']}, {r['apps']} apps, "
                  f"{r['events']} events){kept}")
    except BackupError as e:
        print(f"integd: {args.command} failed: {e}", file=sys.stderr)
        return 1
    print(f"note: {MASTER_KEY_NOTE}")
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.config_command == "check":
        problems = check_config_file(args.file)
        for line in problems:
            print(line)
        if not problems:
            print(f"{args.file}: ok")
        return 1 if problems else 0
    config = load_config(args.config, env=_overrides(args))
    out = redacted(config)
    paths = resolve_paths(config, env=_overrides(args))
    out["resolved"] = {"state_dir": str(paths.state_dir), "socket": str(paths.socket),
                       "config_file": str(paths.config_file) if paths.config_file else None}
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
