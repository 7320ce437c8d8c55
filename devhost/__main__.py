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

from devhost.app import AppLoadError, apply_settings, load_app, load_settings
from devhost.host import Host
from devhost.store import Store
from devhost.timestamps import SETTING as FAST_TIMESTAMPS
from devhost.timestamps import install as install_fast_timestamps


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="devhost", description="Local host for Python v2 Durable Functions apps")
    parser.add_argument("--app", default=".", help="folder with function_app.py and host.json")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--data", help="state folder (default: <app>/.devhost)")
    parser.add_argument("--settings", help="settings file (default: <app>/local.settings.json when present)")
    parser.add_argument("--function-key", help="enforce this key on non-anonymous HTTP functions")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


async def serve(host: Host, port: int) -> None:
    runner = web.AppRunner(host.build(), access_log=logging.getLogger("devhost.access") if host else None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"devhost: listening on http://127.0.0.1:{port}", flush=True)
    for info in host.index.functions:
        if info.kind == "http":
            methods = ",".join(info.methods) or "ALL"
            print(f"  {info.name}: [{methods}] http://127.0.0.1:{port}/{host.index.route_prefix}/{info.route}")
        else:
            print(f"  {info.name}: {info.kind}{' ' + str(info.durable_name) if info.durable_name else ''}")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        print("devhost: stopped", flush=True)


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
            apply_settings(load_settings(settings_file))
        index = load_app(app_dir)
    except AppLoadError as error:
        print(f"devhost: cannot load the app: {error}", file=sys.stderr, flush=True)
        return 2
    if not install_fast_timestamps():
        print(f"devhost: {FAST_TIMESTAMPS}=0: the Durable SDK parses history timestamps with dateutil", flush=True)
    data_dir = Path(args.data) if args.data else app_dir / ".devhost"
    store = Store(data_dir / "taskhub.sqlite")
    os.environ.setdefault("WEBSITE_HOSTNAME", f"127.0.0.1:{args.port}")
    host = Host(index, store, args.port, args.function_key)
    try:
        asyncio.run(serve(host, args.port))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
