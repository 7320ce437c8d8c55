"""The end-to-end job's floor with aciemu's emulated provisioning: what the bench states beside the bare floor, and
that the stacks it starts really emulate that provisioning."""

from __future__ import annotations

import time

import pytest

from aciemu.__main__ import parse_args
from bench.appsettings import emulator_args
from bench.floor import EMULATED_PROVISIONING_SECONDS, floor_seconds, floor_with_provisioning


def test_every_stack_the_bench_starts_runs_aciemu_with_the_provisioning_its_figures_name() -> None:
    # Read the way aciemu reads its command line: the flags the end-to-end and scale jobs start it with.
    started = parse_args(emulator_args(50))
    assert started.provisioning_seconds == EMULATED_PROVISIONING_SECONDS > 0
    assert (started.max_groups, started.max_cores) == (60, 60)
    # And it is what aciemu does without the flag, so the figures compare with runs that did not pass it.
    assert parse_args([]).provisioning_seconds == EMULATED_PROVISIONING_SECONDS


def test_each_slot_waits_the_provisioning_once_per_task_it_runs() -> None:
    run = {"tasks": 1000, "slots": 50, "provisioning_seconds": 0.02}
    assert floor_with_provisioning(20.0, run) == pytest.approx(20.0 + 20 * 0.02)
    uneven = {"tasks": 101, "slots": 50, "provisioning_seconds": 0.5}  # the last slot runs a third task
    assert floor_with_provisioning(3.0, uneven) == pytest.approx(3.0 + 3 * 0.5)
    older = {"tasks": 100, "slots": 50}  # a result written before the figure named its provisioning
    assert floor_with_provisioning(2.0, older) == pytest.approx(2.0 + 2 * EMULATED_PROVISIONING_SECONDS)


def test_the_floor_runs_the_sleeps_concurrently() -> None:
    started = time.perf_counter()
    seconds = floor_seconds(4, 4)
    assert 1.0 <= seconds < 2.0 and time.perf_counter() - started >= 1.0
