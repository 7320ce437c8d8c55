"""Start one of our local services (devhost, aciemu, ...) as a subprocess on a loopback port, wait until it is
ready, and stop it: SIGTERM, then SIGKILL after a grace period. Used by tests, `acibatch up` and `make demo`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

LOG_TAIL_CHARS = 4000


class ServiceFailed(RuntimeError):
    """The service exited or never became ready; the message includes the tail of its log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServiceProcess:
    """A Python module run as a child process, ready when `ready_path` answers 200."""

    module = ""
    ready_path = "/"

    def __init__(
        self,
        args: Sequence[str],
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        ready_timeout: float = 60.0,
        stop_grace: float = 10.0,
    ) -> None:
        self.port = port or free_port()
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log file)"
        return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]

    def start(self) -> None:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.stop()
                raise ServiceFailed(f"{self.module} exited with {code}:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceFailed(f"{self.module} was not ready within {self.ready_timeout:.0f} s:\n{self.log_tail()}")

    def command(self) -> list[str]:
        """The child's argv: by default this repo's Python `module`; a service that is not one overrides it."""
        return [sys.executable, "-m", self.module, "--port", str(self.port), *self.args]

    def ready(self) -> bool:
        """One readiness probe: `ready_path` answers 200. A service without such a route overrides it."""
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the whole process group at once (crash tests)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
