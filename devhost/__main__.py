"""`python -m devhost --app DIR`: run a Python v2-model Functions app (with Durable Functions) locally."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from devhost import sessions
from devhost.app import AppLoadError, apply_settings, load_settings
from devhost.fastpaths import SETTING as SDK_FAST_PATHS
from devhost.fastpaths import enabled as sdk_fast_paths_enabled
from devhost.host import Host
from devhost.store import Store
from devhost.workers import WorkerPool, worker_count


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="devhost", description="Local host for Python v2 Durable Functions apps")
    parser.add_argument("--app", default=".", help="folder with function_app.py and host.json")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--data", help="state folder (default: <app>/.devhost)")
    parser.add_argument("--settings", help="settings file (default: <app>/local.settings.json when present)")
    parser.add_argument("--function-key", help="enforce this key on non-anonymous HTTP functions")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


async def serve(app_dir: Path, data_dir: Path, port: int, function_key: str | None, worker_processes: int) -> int:
    workers = WorkerPool(app_dir, worker_processes, f"http://127.0.0.1:{port}")
    try:
        index = await workers.start()
    except AppLoadError as error:
        print(f"devhost: cannot load the app: {error}", file=sys.stderr, flush=True)
        return 2
    store = Store(data_dir / "taskhub.sqlite")
    host = Host(index, store, port, workers, function_key)
    runner = web.AppRunner(host.build(), access_log=logging.getLogger("devhost.access"))
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        print(f"devhost: listening on http://127.0.0.1:{port} ({len(workers.slots)} language worker(s))", flush=True)
        for info in index.functions:
            if info.kind == "http":
                methods = ",".join(info.methods) or "ALL"
                print(f"  {info.name}: [{methods}] http://127.0.0.1:{port}/{index.route_prefix}/{info.route}")
            else:
                print(f"  {info.name}: {info.kind}{' ' + str(info.durable_name) if info.durable_name else ''}")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()
        await workers.stop()
        store.close()
        print("devhost: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("devhost.access").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    app_dir = Path(args.app).resolve()
    settings_file = Path(args.settings) if args.settings else app_dir / "local.settings.json"
    try:
        if args.settings or settings_file.exists():
            apply_settings(load_settings(settings_file))  # before workers start: they inherit the environment
        worker_processes = worker_count()
        session_mode = sessions.mode()
        sessions.kept()  # checked here too, so a bad value stops devhost now and not each worker later
    except (AppLoadError, ValueError) as error:
        print(f"devhost: cannot load the app: {error}", file=sys.stderr, flush=True)
        return 2
    if not sdk_fast_paths_enabled():
        print(f"devhost: {SDK_FAST_PATHS}=0: the Durable SDK runs stock, without devhost's fast paths", flush=True)
    if session_mode != "1":
        what = "every episode replays the whole history" if session_mode == "0" else "sessions checked against replays"
        print(f"devhost: {sessions.SETTING}={session_mode}: {what}", flush=True)
    data_dir = Path(args.data) if args.data else app_dir / ".devhost"
    os.environ.setdefault("WEBSITE_HOSTNAME", f"127.0.0.1:{args.port}")
    return asyncio.run(serve(app_dir, data_dir, args.port, args.function_key, worker_processes))


if __name__ == "__main__":
    sys.exit(main())
