"""Start aciemu as a subprocess on a loopback port and stop it (built on devhost's process launcher)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aciemu import auth
from devhost.launcher import ServiceFailed, ServiceProcess


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
        self.data_dir = data_dir

    @property
    def token(self) -> str:
        """The bearer token this emulator requires on its ARM API (what `--token`/`ACIEMU_TOKEN` or its data
        folder says): read like the emulator reads it, so a caller never has to be handed it separately."""
        given = (_flag(self.args, "--token") or "").strip() or self.env.get(auth.ENV, "").strip()
        if given:
            return given
        stored = auth.read(self.data_dir)
        if stored is None:
            raise ServiceFailed(f"aciemu has not made its token in {self.data_dir} yet (start it first)")
        return stored


def _flag(args: Sequence[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
