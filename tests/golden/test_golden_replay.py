"""Golden histories of the last release, replayed against the working tree's orchestrators.

Each file under histories/ holds every orchestration generation of one scenario as devhost stored it when the
release ran it on the local stack (recorded with record.py; how and when to re-record: docs/versioning.md).
Two verdicts per generation, kept apart on purpose:

- `test_..._schedules_what_its_history_recorded` is the Durable extension's own check (replay.py): an edit
  that fails it strands in-flight instances after a deploy. Never re-record to make it pass; ship the change
  as a new orchestrator version instead.
- `test_..._payloads_stay_compatible` is stricter than Azure, which compares no payloads: an action's input may
  only gain keys, never lose or change one, and the generation must end as it did with a compatible output or
  continue-as-new input. Azure would replay such a change silently and hand the old shape to the new activity
  or generation (or the new shape to the old code still draining), so a failure here means: make the receiver
  accept both shapes, then re-record (docs/versioning.md says when that is allowed).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType

from acibatch import durable_names as names
from tests.golden.replay import CONTINUED, SCHEDULING_EVENTS, Replay, decoded, incompatibilities, kind, replay

HISTORIES = Path(__file__).parent / "histories"
RELEASE_SCENARIOS = ("success", "retry", "cancel", "timeout", "generations", "spot", "throttled", "workflow", "tick")
AGENT_SCENARIOS = ("agent", "agentfail")  # recorded from the release that brought the agent (issue 24)
# Recorded with BATCH_TASK_WAVES=true on a region of one group (a window of two) from the release that brought task
# waves (issue 29): windowed chunks, one of them cancelled with tasks it never started.
WAVE_SCENARIOS = ("waves", "wavecancel")
# Ended by the host, not by the code: no end of the code's to compare with.
HOST_ENDS = {"Terminated"}


@cache
def goldens() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(HISTORIES.glob("*.json"))}


def generation_ids() -> list[tuple[str, int]]:
    return [(scenario, index) for scenario, doc in goldens().items() for index in range(len(doc["generations"]))]


def label(case: tuple[str, int]) -> str:
    scenario, index = case
    generation = goldens()[scenario]["generations"][index]
    return f"{scenario}/{generation['instance']}#{generation['generation']}"


CASES = generation_ids()


def generation_of(case: tuple[str, int]) -> dict[str, Any]:
    scenario, index = case
    generation: dict[str, Any] = goldens()[scenario]["generations"][index]
    return generation


def next_generation(case: tuple[str, int]) -> dict[str, Any] | None:
    """The same instance's next recorded generation, if there is one."""
    scenario, index = case
    current = generation_of(case)
    later = goldens()[scenario]["generations"][index + 1 :]
    return next((g for g in later if g["instance"] == current["instance"]), None)


@cache
def replayed(case: tuple[str, int]) -> Replay:
    """Each generation is replayed once for both verdicts."""
    return replay(generation_of(case))


def started_input(generation: dict[str, Any]) -> Any:
    started = next(e for e in generation["history"] if kind(e) is HistoryEventType.EXECUTION_STARTED)
    return decoded(started.get("Input"))


def completed_output(generation: dict[str, Any]) -> Any:
    done = [e for e in generation["history"] if kind(e) is HistoryEventType.EXECUTION_COMPLETED]
    return decoded(done[-1].get("Result")) if done else None


def test_the_goldens_cover_every_scenario_and_orchestrator_the_versioning_rule_names() -> None:
    scenarios = set(goldens())
    assert set(RELEASE_SCENARIOS) | set(AGENT_SCENARIOS) | set(WAVE_SCENARIOS) <= scenarios
    recorded = {g["orchestrator"] for doc in goldens().values() for g in doc["generations"]}
    wanted = {names.JOB_ORCHESTRATOR, names.CHUNK_ORCHESTRATOR, names.TASK_ORCHESTRATOR, names.SCHEDULE_ORCHESTRATOR}
    assert wanted <= recorded
    # A scenario is recorded from the release that introduced it (or last changed it on purpose); the scenarios
    # of one feature share their release, and older files keep guarding the instances of theirs.
    for feature in (RELEASE_SCENARIOS, AGENT_SCENARIOS, WAVE_SCENARIOS):
        assert len({goldens()[name]["release"] for name in feature}) == 1, feature
    # The task orchestrator's scenarios include a mid-run continue-as-new and DTFx's retry interceptor.
    generations = [g for g in goldens()["generations"]["generations"] if g["orchestrator"] == names.TASK_ORCHESTRATOR]
    assert [g["end"] for g in generations] == [CONTINUED, CONTINUED, "Completed"]
    assert replayed(("retry", 0)).host_events


def subs_started_per_episode(generation: dict[str, Any]) -> list[int]:
    counts: list[int] = []
    for event in generation["history"]:
        if kind(event) is HistoryEventType.ORCHESTRATOR_STARTED:
            counts.append(0)
        elif kind(event) is HistoryEventType.SUB_ORCHESTRATION_INSTANCE_CREATED:
            counts[-1] += 1
    return [count for count in counts if count]


def windowed_chunk(scenario: str) -> dict[str, Any]:
    (chunk,) = [g for g in goldens()[scenario]["generations"] if g["orchestrator"] == names.CHUNK_ORCHESTRATOR]
    assert started_input(chunk)["window"] == 2
    return chunk


def test_the_wave_goldens_hold_windowed_chunks_one_in_several_waves_one_cancelled_before_its_second() -> None:
    # Otherwise they would guard nothing a chunk without a window does not: the replay check below is what keeps
    # an in-flight windowed chunk replayable.
    waves = subs_started_per_episode(windowed_chunk("waves"))
    assert len(waves) > 1 and max(waves) <= 2 and sum(waves) == 5, waves
    cancelled = windowed_chunk("wavecancel")
    assert subs_started_per_episode(cancelled) == [2]
    assert completed_output(cancelled) == {"Cancelled": 5}  # the three it never started end Cancelled too


@pytest.mark.parametrize("case", CASES, ids=label)
def test_each_recorded_generation_schedules_what_its_history_recorded(case: tuple[str, int]) -> None:
    generation, result = generation_of(case), replayed(case)
    verdict = result.verdict
    assert verdict is None, verdict
    recorded = [e for e in generation["history"] if kind(e) in SCHEDULING_EVENTS]
    assert len(result.steps) + len(result.host_events) == len(recorded)


@pytest.mark.parametrize("case", CASES, ids=label)
def test_each_recorded_generations_payloads_stay_compatible(case: tuple[str, int]) -> None:
    generation, result = generation_of(case), replayed(case)
    # A diverged replay has no payloads to compare at the diverging step: fail here too, never pass or skip.
    assert result.verdict is None, f"payloads cannot be compared: {result.verdict}"
    problems = [
        f"sequence number {step.number} ({step.recorded()}): {change}"
        for step in result.steps
        if (change := step.payload_change()) is not None
    ]
    if generation["end"] not in HOST_ENDS:
        if result.end != generation["end"]:
            problems.append(f"the generation ended {generation['end']}, the replay ends it {result.end}")
        elif result.end == CONTINUED and (following := next_generation(case)) is not None:
            problems += incompatibilities(started_input(following), result.continued_with, "continue-as-new input")
        elif result.end == "Completed":
            problems += incompatibilities(completed_output(generation), result.state.get("output"), "output")
    assert not problems, f"{generation['orchestrator']} {generation['instance']}: " + "; ".join(problems)
