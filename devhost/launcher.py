"""Start devhost as a subprocess on a loopback port; the process handling is `localtools.process`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from devhost import systemkey
from localtools.process import ServiceFailed, ServiceProcess, free_port

__all__ = ["DevhostProcess", "ServiceFailed", "free_port"]


class DevhostProcess(ServiceProcess):
    module = "devhost"
    ready_path = "/admin/host/status"

    def __init__(
        self,
        app_dir: Path,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        ready_timeout: float = 60.0,
    ) -> None:
        args = ["--app", str(app_dir), "--data", str(data_dir), *extra_args]
        super().__init__(args, port=port, env=env, log_path=log_path, ready_timeout=ready_timeout)
        self.data_dir = data_dir

    @property
    def system_key(self) -> str:
        """The Durable extension's system key this devhost requires on `/runtime/webhooks/durabletask/...`."""
        key = systemkey.read(self.data_dir, self.env)
        if key is None:
            raise ServiceFailed(f"devhost has not made its system key in {self.data_dir} yet (start it first)")
        return key

    @property
    def durable_url(self) -> str:
        return f"{self.url}/runtime/webhooks/durabletask"
