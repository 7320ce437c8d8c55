"""CPU time of devhost's processes (the host and its language workers) from /proc: what the stack itself spends,
without the containers, aciemu or the bench."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bench.machine import children


def cpu_seconds(pid: int) -> float | None:
    """The user + system CPU a live process has used, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count the fields after its closing one.
    fields = stat.rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def devhost_cpu(host: int) -> dict[str, float]:
    """CPU seconds so far of the devhost process `host` ("host") and of each of its workers (by pid)."""
    readings = {"host": cpu_seconds(host)}
    readings.update({str(child): cpu_seconds(child) for child in children(host)})
    return {name: seconds for name, seconds in readings.items() if seconds is not None}


def cpu_used(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    """Seconds used between two readings, the host's and the workers' together (a worker started in between
    counts from zero; one that exited in between is lost: the figure is then a lower bound)."""
    host = after.get("host", 0.0) - before.get("host", 0.0)
    workers = sum(seconds - before.get(name, 0.0) for name, seconds in after.items() if name != "host")
    return {"host": round(host, 3), "workers": round(workers, 3), "total": round(host + workers, 3)}
