"""`python -m devhost --app DIR`: run a Python v2-model Functions app (with Durable Functions) locally."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from devhost import queuepolling, sessions, systemkey
from devhost.app import AppLoadError, _host_json, apply_settings, load_settings
from devhost.binding import worker_setting
from devhost.fastpaths import SETTING as SDK_FAST_PATHS
from devhost.fastpaths import enabled as sdk_fast_paths_enabled
from devhost.host import RPC_PATH, Host
from devhost.requestlimits import RequestLimits
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


ACCESS_LOG = logging.getLogger("devhost.access")


class RedactingAccessLogger(AbstractAccessLogger):
    """One line per request without its query string or the RPC path's first part: both may hold the system key."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.path
        key = request.match_info.get("key") if isinstance(request, web.Request) else None
        if key:
            path = path.replace(key, "<key>", 1)
        self.logger.info("%s %s %s %.1f ms", request.method, path, response.status, time * 1000)


def rpc_listener() -> socket.socket:
    """The Durable RPC endpoint's socket, bound before the workers start so their binding can name its port.
    The extension tries 17071 first; devhost takes any free loopback port, so several can run at once."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    return listener


async def serve(
    app_dir: Path,
    data_dir: Path,
    port: int,
    function_key: str | None,
    worker_processes: int,
    limits: RequestLimits,
    key: str,
) -> int:
    listener = rpc_listener()
    rpc_base = f"http://127.0.0.1:{listener.getsockname()[1]}/{quote(key, safe='')}/{RPC_PATH}/"
    workers = WorkerPool(app_dir, worker_processes, f"http://127.0.0.1:{port}", worker_setting(rpc_base, key))
    try:
        index = await workers.start()
    except AppLoadError as error:
        listener.close()
        print(f"devhost: cannot load the app: {error}", file=sys.stderr, flush=True)
        return 2
    store = Store(data_dir / "taskhub.sqlite")
    host = Host(index, store, port, workers, function_key, system_key=key, rpc_base=rpc_base, limits=limits)
    runner = web.AppRunner(host.build(), access_log_class=RedactingAccessLogger, access_log=ACCESS_LOG)
    rpc_runner = web.AppRunner(host.build_rpc(), access_log_class=RedactingAccessLogger, access_log=ACCESS_LOG)
    try:
        await runner.setup()
        await rpc_runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        await web.SockSite(rpc_runner, listener).start()
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
        await rpc_runner.cleanup()
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
        queuepolling.config_for(app_dir)  # DEVHOST_QUEUE_LATENCY and its host.json settings
        limits = RequestLimits.from_config(_host_json(app_dir))
        data_dir = Path(args.data) if args.data else app_dir / ".devhost"
        key = systemkey.load_or_create(data_dir)  # a broken key file stops devhost here, naming the file
    except (AppLoadError, ValueError, OSError, systemkey.SystemKeyError) as error:
        print(f"devhost: cannot load the app: {error}", file=sys.stderr, flush=True)
        return 2
    if not sdk_fast_paths_enabled():
        print(f"devhost: {SDK_FAST_PATHS}=0: the Durable SDK runs stock, without devhost's fast paths", flush=True)
    if session_mode != "1":
        what = "every episode replays the whole history" if session_mode == "0" else "sessions checked against replays"
        print(f"devhost: {sessions.SETTING}={session_mode}: {what}", flush=True)
    os.environ.setdefault("WEBSITE_HOSTNAME", f"127.0.0.1:{args.port}")
    return asyncio.run(serve(app_dir, data_dir, args.port, args.function_key, worker_processes, limits, key))


if __name__ == "__main__":
    sys.exit(main())
