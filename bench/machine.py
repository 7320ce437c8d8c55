"""What the bench reads of the machine: its CPU time from /proc/stat and the stack's peak RSS from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class MachineCpu:
    """Cumulative CPU time of the whole machine (every process and the kernel), from /proc/stat."""

    busy: float  # seconds spent running anything: user, nice, system, irq, softirq
    total: float  # busy + idle + iowait + steal, summed over all cores

    @staticmethod
    def now() -> MachineCpu | None:
        try:
            fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = fields
        tick = os.sysconf("SC_CLK_TCK")
        busy = (user + nice + system + irq + softirq) / tick
        return MachineCpu(busy, busy + (idle + iowait + steal) / tick)

    def since(self, earlier: MachineCpu) -> dict[str, float]:
        busy, total = self.busy - earlier.busy, self.total - earlier.total
        return {"cpu_seconds": round(busy, 1), "busy_share": round(busy / total, 3) if total else 0.0}


def children(pid: int) -> list[int]:
    """The child processes of `pid` (devhost's language workers), none once it is gone."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def peak_rss_of_stack(pids: dict[str, int]) -> dict[str, Any]:
    """Peak RSS of aciemu, and of devhost with its language workers (the sum of each process's own peak: an
    upper bound of their peak together, since the peaks need not coincide)."""
    host = pids["devhost"]
    parts = [peak_rss_mb(pid) for pid in (host, *children(host))]
    return {
        "devhost": round(sum(part or 0.0 for part in parts), 1),
        "devhost_host": parts[0],
        "devhost_workers": parts[1:],
        "aciemu": peak_rss_mb(pids["aciemu"]),
    }


def find_pids(host_url: str, aci_url: str) -> dict[str, int]:
    """The devhost and aciemu processes listening on the stack's ports (children of this process)."""
    found: dict[str, int] = {}
    ports = {"devhost": host_url.rsplit(":", 1)[1], "aciemu": aci_url.rsplit(":", 1)[1]}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [part.decode(errors="replace") for part in command]
        for name, port in ports.items():
            if "-m" in args and name in args and port in args:
                found[name] = int(entry)
    return found


def machine_cpu_row(cpu: dict[str, float] | None) -> str:
    return "unknown (no /proc/stat)" if cpu is None else f"{cpu['cpu_seconds']} ({cpu['busy_share']:.0%})"
