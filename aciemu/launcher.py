"""Start aciemu as a subprocess on a loopback port and stop it (built on localtools' process launcher)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aciemu import auth
from aciemu.limits import Limits
from localtools.process import ServiceFailed, ServiceProcess


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
        limits: Limits | Mapping[str, Any] | None = None,
    ) -> None:
        """`limits`: ACI's subscription limits to enforce (a `Limits`, or its JSON document as a dict, e.g.
        `{"creates": [{"limit": 10, "seconds": 3}], "spotCores": 0}`); None enforces none of them."""
        document = limits.to_dict() if isinstance(limits, Limits) else limits
        # Parsed here as well so a bad document fails in the caller, not as an emulator that never gets ready.
        limit_args = ["--limits-json", json.dumps(Limits.from_dict(document).to_dict())] if document else []
        super().__init__(
            ["--data", str(data_dir), *limit_args, *args], port=port, log_path=log_path, ready_timeout=ready_timeout
        )
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
