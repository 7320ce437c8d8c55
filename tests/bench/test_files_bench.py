"""The file path's bench section (bench/files.py) at its smoke size, on real stacks: one without storage, one with
Azurite. Its report has every figure the bench table prints, and the files kind really moved files both ways: each
task listed its outputs, which are byte copies of staged inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from bench import files
from bench.files import Kind, files_overhead, input_files, outputs_are_the_inputs, rows, sizes, summarise
from localtools.azurite import find_azurite

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
FIGURES = {"task_s_median", "task_s_p95", "submit_to_done_s_median", "submit_to_done_s_p95", "makespan_s_median"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return files_overhead(*sizes(smoke=True), tmp_path_factory.mktemp("bench-files"))


def test_the_smoke_report_has_every_figure_for_each_kind(report: dict[str, Any]) -> None:
    tasks, slots, rounds = sizes(smoke=True)
    assert (report["tasks_per_job"], report["slots"], report["rounds"]) == (tasks, slots, rounds)
    for kind in Kind:
        figures = report[kind.value]
        assert figures["all_succeeded"], report["runs"][kind.value]
        assert figures["tasks_measured"] == tasks * rounds
        assert all(isinstance(figures[name], float) and figures[name] > 0 for name in FIGURES), figures
        assert figures["machine_cpu_s_per_task"] is None or figures["machine_cpu_s_per_task"] > 0
        # `sleep 1` runs in every task: no figure can be shorter than it.
        assert figures["task_s_median"] >= 1.0 and figures["makespan_s_median"] >= 1.0
    for kind in (Kind.AGENT, Kind.FILES):
        assert set(report[kind.value]["over_plain"]) == {*FIGURES - {"submit_to_done_s_p95"}, "machine_cpu_s_per_task"}
    assert [name.strip() for name, _ in rows(report)][1:4] == ["plain", "agent", "files"]


def test_the_files_tasks_staged_the_inputs_in_and_uploaded_copies_out(report: dict[str, Any]) -> None:
    assert report["outputs_match_inputs"] is True
    inputs = input_files()
    assert len(inputs) == files.INPUT_FILES == 10
    for run in report["runs"][Kind.FILES.value]:
        for task_id, listed in run["outputs"].items():
            by_file = {item["file"]: item for item in listed}
            assert sorted(by_file) == ["out/r0.bin", "out/r1.bin", "out/r2.bin"], task_id
            for number in range(files.OUTPUT_FILES):
                item = by_file[f"out/r{number}.bin"]
                assert item["size"] == files.INPUT_FILE_BYTES
                assert item["sha256"] == hashlib.sha256(inputs[f"f{number}.bin"]).hexdigest()
                assert item["name"] == f"jobs/{run['job']}/tasks/{task_id}/outputs/r{number}.bin"
    # The other kinds moved no files: they list none.
    assert all("outputs" not in run for kind in (Kind.PLAIN, Kind.AGENT) for run in report["runs"][kind.value])


def test_a_files_task_whose_output_differs_from_its_input_is_caught() -> None:
    inputs = input_files()
    good = {"out/r0.bin": inputs["f0.bin"], "out/r1.bin": inputs["f1.bin"], "out/r2.bin": inputs["f2.bin"]}
    listed = [{"file": name, "sha256": hashlib.sha256(data).hexdigest()} for name, data in good.items()]
    assert outputs_are_the_inputs([{"outputs": {"0": listed}}], tasks=1)
    swapped = [{**listed[0], "sha256": listed[1]["sha256"]}, *listed[1:]]
    assert not outputs_are_the_inputs([{"outputs": {"0": swapped}}], tasks=1)
    assert not outputs_are_the_inputs([{"outputs": {"0": listed[:2]}}], tasks=1)
    assert not outputs_are_the_inputs([{"outputs": {}}], tasks=1)


def test_the_summary_pools_every_round_and_takes_nearest_rank_p95() -> None:
    runs = [
        {"task_s": [float(n) for n in range(1, 11)], "submit_to_done_s": [2.0] * 10, "makespan_s": 5.0,
         "machine_cpu_s": 3.0, "state": "Succeeded", "failed": []},
        {"task_s": [float(n) for n in range(11, 21)], "submit_to_done_s": [4.0] * 10, "makespan_s": 7.0,
         "machine_cpu_s": 5.0, "state": "Succeeded", "failed": []},
    ]  # fmt: skip
    summary = summarise(runs)
    assert summary["tasks_measured"] == 20
    assert summary["task_s_median"] == 10.5 and summary["task_s_p95"] == 19.0
    assert summary["submit_to_done_s_median"] == 3.0 and summary["makespan_s_median"] == 6.0
    assert summary["machine_cpu_s_per_task"] == 0.4
    assert summary["all_succeeded"]
    assert not summarise([{**runs[0], "state": "Failed"}])["all_succeeded"]


def test_without_azurite_the_section_is_skipped_saying_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a machine without it: nothing on PATH (the repo has no local install either, checked first).
    monkeypatch.setenv("PATH", str(tmp_path))
    if find_azurite() is not None:
        pytest.skip("this checkout has a local Azurite install under the repo, so it cannot be made missing")
    skipped = files_overhead(1, 1, 1, tmp_path)
    assert skipped == {"skipped": "azurite-blob is not installed: run `npm install -g azurite@3.35.0`"}
    assert rows(skipped) == [("file path overhead", f"skipped: {skipped['skipped']}")]
