"""Start aciemu as a subprocess on a loopback port and stop it (built on devhost's process launcher)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devhost.launcher import ServiceProcess


class AciEmulatorProcess(ServiceProcess):
    module = "aciemu"
    ready_path = "/_emulator/health"

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        log_path: Path | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        super().__init__(["--data", str(data_dir), *args], port=port, log_path=log_path, ready_timeout=ready_timeout)
