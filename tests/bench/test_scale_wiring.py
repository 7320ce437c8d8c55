"""How `bench.run` reports the scale job: skipped, unavailable, failed or measured, never losing the run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.run import scale, scale_table


def test_a_skipped_or_failed_scale_job_is_one_row_saying_so() -> None:
    assert scale_table(None, 20.0) == [("scale job", "skipped (--no-scale)")]
    assert scale_table({"error": "RuntimeError: boom"}, 20.0) == [("scale job", "RuntimeError: boom")]


def test_without_bench_scale_the_run_goes_on_and_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "bench.scale", None)  # what Python does for a module that cannot be imported
    result = scale(True, tmp_path, "bash", 20.0)
    assert result["skipped"].startswith("bench/scale.py cannot be imported")
    assert scale_table(result, 20.0) == [("scale job", result["skipped"])]


def test_a_measured_scale_job_is_shown_by_bench_scale() -> None:
    latency = {"p50": 20.0, "p99": 90.0, "max": 95.0, "calls": 40, "failures": 0}
    result = {
        "tasks": 60, "slots": 10, "seconds": 30.0, "state": "Succeeded", "over_end_to_end": 1.5,
        "peak_rss_mb": {"devhost": 210.0, "aciemu": 38.0},
        "api_ms": {"job": latency, "jobs": latency},
    }  # fmt: skip
    rows = dict(scale_table(result, 20.0))
    assert any("Succeeded" in value for value in rows.values())
