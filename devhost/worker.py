"""A devhost language worker: the process that imports the app and runs its functions.

As in Azure, where the Functions host keeps the state and a separate Python worker process runs user code,
the devhost host process owns storage, dispatch and HTTP, and starts workers
(`FUNCTIONS_WORKER_PROCESS_COUNT`) that each import the app once and serve invocations over a socket
(`devhost.wire` frames). Orchestrator episodes (the SDK's replay) and entity batches run on the worker's event
loop, async functions on that loop too, and sync functions in its thread pool
(`PYTHON_THREADPOOL_THREAD_COUNT`), so user code and the SDK run on other cores than the host's event loop.

The worker exits when the host closes its socket (including when the host dies), so no worker outlives it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import socket
import sys
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions._durable_functions import df_dumps, df_loads
from azure.functions.timer import TimerRequest

from devhost import wire
from devhost.app import AppIndex, AppLoadError, FunctionInfo, load_app
from devhost.binding import durable_client_binding, take_worker_setting
from devhost.fastpaths import install as install_sdk_fast_paths
from devhost.sessions import SessionMiss, Sessions

log = logging.getLogger("devhost.worker")
DEFAULT_THREADS = 16


class InvocationContext:
    """What the worker passes as `context` to functions that ask for it (azure.functions.Context's fields)."""

    def __init__(self, function_name: str) -> None:
        self.invocation_id = str(uuid.uuid4())
        self.function_name = function_name
        self.function_directory = ""
        self.trace_context = None
        self.retry_context = None
        self.thread_local_storage = None


def decode_activity_input(text: str) -> Any:
    try:
        return df_loads(text)
    except ValueError:
        return text


def failure(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "details": "".join(traceback.format_exception(exc))[-4000:],
    }


class Worker:
    def __init__(self, index: AppIndex, host_url: str, threads: int, rpc_url: str, system_key: str) -> None:
        self.index = index
        self.binding = durable_client_binding(host_url, index.hub_name, rpc_url, system_key)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="devhost-fn")
        self.writer: asyncio.StreamWriter | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.sessions = Sessions.from_environment()

    async def call(self, info: FunctionInfo, trigger_value: Any) -> Any:
        function = self.index.callables[info.name]
        kwargs: dict[str, Any] = {info.trigger_param: trigger_value}
        if info.client_param:
            kwargs[info.client_param] = self.binding
        if info.takes_context:
            kwargs["context"] = InvocationContext(info.name)
        if info.is_async:
            return await function(**kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(function, **kwargs))

    def reply(self, request_id: int, header: dict[str, Any], body: bytes = b"") -> None:
        assert self.writer is not None
        self.writer.write(wire.encode({"id": request_id, **header}, body))

    def handle(self, header: dict[str, Any], body: bytes) -> None:
        info = self.index.functions_by_name[header["function"]]
        if info.kind in {"orchestrator", "entity"}:
            # The SDK's handle is a pure, quick function of its JSON: run it here, in arrival order.
            try:
                result, kept = self.episode(info, header, body.decode())
                self.reply(header["id"], {"kept": True} if kept else {}, result.encode())
            except SessionMiss:
                self.reply(header["id"], {"miss": True})
            except Exception as exc:
                self.reply(header["id"], {"error": failure(exc)})
            return
        task = asyncio.get_running_loop().create_task(self.invoke(info, header, body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def episode(self, info: FunctionInfo, header: dict[str, Any], body: str) -> tuple[str, bool]:
        """An orchestrator episode or entity batch: the SDK's answer, and whether a session was kept for the
        next episode (`devhost.sessions`; the host asked for one by sending a session header)."""
        handle = self.index.callables[info.name]
        session = header.get("session")
        if session is not None and self.sessions is not None:
            return self.sessions.run(handle, session["instance"], session["execution"], session["past"], body)
        if session is not None and session["past"]:
            raise SessionMiss(session["instance"])
        return str(handle(body)), False

    async def invoke(self, info: FunctionInfo, header: dict[str, Any], body: bytes) -> None:
        try:
            if info.kind == "activity":
                value = await self.call(info, decode_activity_input(body.decode() or "null"))
                self.reply(header["id"], {}, df_dumps(value).encode())
            elif info.kind == "http":
                self.reply(header["id"], *http_reply(info, await self.call(info, http_request(header, body))))
            elif info.kind == "timer":
                timer = TimerRequest(past_due=False, schedule_status={}, schedule={"AdjustForDST": True})
                await self.call(info, timer)
                self.reply(header["id"], {})
            else:
                raise RuntimeError(f"devhost cannot invoke a {info.kind} function")
        except Exception as exc:
            if info.kind in {"http", "timer"}:
                log.exception("function %s failed", info.name)
            self.reply(header["id"], {"error": failure(exc)})

    async def serve(self, sock: socket.socket) -> None:
        reader, self.writer = await asyncio.open_unix_connection(sock=sock)
        self.reply(0, {"ready": self.index.to_dict()})
        while (frame := await wire.read(reader)) is not None:
            self.handle(*frame)
            # Reading buffered frames does not suspend, so without this a backlog of replays would run back to
            # back while async functions (HTTP triggers, their durable client calls) wait for the loop.
            await asyncio.sleep(0)
        # The host has gone: nothing this worker still runs can report anywhere.
        await close_durable_client_session()


def http_request(header: dict[str, Any], body: bytes) -> func.HttpRequest:
    request = header["request"]
    return func.HttpRequest(
        method=request["method"],
        url=request["url"],
        headers=request["headers"],
        params=request["params"],
        route_params=request["routeParams"],
        body=body,
    )


def http_reply(info: FunctionInfo, result: Any) -> tuple[dict[str, Any], bytes]:
    """The function's answer as a frame; the host turns it into the HTTP response."""
    if isinstance(result, func.HttpResponse):
        response = {
            "status": result.status_code,
            "headers": dict(result.headers),
            "mimetype": result.mimetype,
            "charset": result.charset,
        }
        return {"response": response}, result.get_body()
    if isinstance(result, str | bytes):
        return {"response": {"status": 200, "headers": {}}}, result if isinstance(result, bytes) else result.encode()
    if result is None:
        return {"response": {"status": 204, "headers": {}}}, b""
    log.error("function %s returned %s, which is not an HTTP response", info.name, type(result).__name__)
    return {"unsupported": type(result).__name__}, b""


async def close_durable_client_session() -> None:
    """The Durable SDK keeps one module-global aiohttp session for its client; close it with the loop."""
    try:
        from azure.durable_functions.models.utils import http_utils  # noqa: PLC0415  (SDK internals)
    except ImportError:
        return
    closer = getattr(http_utils, "_close_session", None)
    if closer is not None:
        await closer()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devhost.worker", description="devhost language worker (started by devhost)")
    parser.add_argument("--app", required=True)
    parser.add_argument("--fd", type=int, required=True, help="the socket to the host")
    parser.add_argument("--host-url", required=True)
    args = parser.parse_args(argv)
    rpc_url, system_key = take_worker_setting(os.environ)  # before the app is imported: user code never sees it
    # Ctrl-C reaches the whole process group: the host decides when workers stop (it closes their sockets).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s worker-{os.getpid()}: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    sock = socket.socket(fileno=args.fd)
    install_sdk_fast_paths()
    try:
        index = load_app(Path(args.app))
    except AppLoadError as error:
        sock.sendall(wire.encode({"id": 0, "failed": str(error)}))
        return 2
    threads = int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT") or DEFAULT_THREADS)
    asyncio.run(Worker(index, args.host_url, threads, rpc_url, system_key).serve(sock))
    sys.stdout.flush()
    # Threads may still run user code (a sync activity): do not wait for them, the host has gone.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
