"""The app settings the bench's jobs run with, and aciemu's flags: one place for every stack the bench starts."""

from __future__ import annotations

from bench.floor import EMULATED_PROVISIONING_SECONDS

# Per-attempt callback event names (docs/callbacks.md): a container's report is one raise with no read. It is off by
# default in the release that brought it, because an older build cannot run such a task; the bench measures what a
# deployment runs once it is turned on, and bench/README.md says so.
CALLBACK_EVENTS = "perAttempt"
# Chunks start their tasks in waves (docs/task-lifecycle.md), off by default for the same reason; the bench measures
# it on, and bench/README.md says so.
TASK_WAVES = "true"


def job_settings(slots: int) -> dict[str, str]:
    """Capacity for `slots` one-core groups, a 30 s poll backstop (callbacks carry the jobs), per-attempt names and
    task waves."""
    return {
        "ACI_MAX_GROUPS": str(slots),
        "ACI_MAX_CORES": str(slots),
        "BATCH_POLL_SECONDS": "30",
        "BATCH_CALLBACK_EVENTS": CALLBACK_EVENTS,
        "BATCH_TASK_WAVES": TASK_WAVES,
    }


def emulator_args(slots: int) -> list[str]:
    """aciemu's flags: room for `slots` groups and more, and the emulated provisioning the figures name."""
    return ["--max-groups", str(slots + 10), "--max-cores", str(slots + 10),
            "--provisioning-seconds", str(EMULATED_PROVISIONING_SECONDS)]  # fmt: skip
