"""What the API and the CLI show of a workflow: Blocked tasks with blockedBy, Skipped ones with their reason, the
counts, and the small graph `acibatch status` draws."""

from __future__ import annotations

from acibatch.records import JobProgress, TaskState
from acibatch.spec import parse_job_spec
from api.jobfacts import JobFacts
from api.jobs import _blocked, _with_workflow_view
from localdev.cli import draw_graph

DIAMOND = {
    "image": "registry.example.com/team/app:1",
    "command": ["run"],
    "tasks": [
        {"id": "A"},
        {"id": "B", "dependsOn": {"taskIds": ["A"]}},
        {"id": "C", "dependsOn": {"taskIds": ["A"]}},
        {"id": "D", "dependsOn": {"taskIds": ["B", "C"]}},
    ],
}


def queued(task_id: str) -> dict[str, object]:
    return {"id": task_id, "state": "Queued", "blockedBy": []}


def test_tasks_waiting_for_upstream_are_blocked_with_what_they_wait_for() -> None:
    job = {"spec": parse_job_spec(DIAMOND).to_dict()}
    graph = JobFacts.of_input(job).graph
    progress = JobProgress(total=4)
    progress.set_task("A", TaskState.SUCCEEDED)
    progress.set_task("B", TaskState.RUNNING)
    blocked = _blocked(graph, progress)
    assert blocked == {"D": ["B", "C"]}  # C has all it needs: released, not begun yet (Queued)
    shown = _with_workflow_view(queued("D"), progress, blocked, graph)
    assert (shown["state"], shown["blockedBy"], shown["upstream"], shown["upstreamCount"]) == (
        "Blocked",
        ["B", "C"],
        ["B", "C"],
        2,
    )
    assert _with_workflow_view(queued("C"), progress, blocked, graph)["state"] == "Queued"


def test_a_skipped_task_shows_its_reason_and_plain_jobs_are_untouched() -> None:
    progress = JobProgress(total=4)
    progress.end_unrun(["D"], TaskState.SKIPPED, ["upstream B Failed"])
    progress.set_task("D", TaskState.RUNNING)  # a late report never moves it back
    shown = _with_workflow_view(queued("D"), progress, {}, None)
    assert (shown["state"], shown["reason"]) == ("Skipped", "upstream B Failed")
    assert JobProgress.from_dict(progress.to_dict()) == progress
    assert JobFacts.of_input({"spec": parse_job_spec({**DIAMOND, "tasks": [{"id": "x"}]}).to_dict()}).graph is None


def test_status_draws_small_graphs_by_depth() -> None:
    tasks = [
        {"id": "A", "state": "Succeeded", "upstream": []},
        {"id": "D", "state": "Skipped", "upstream": ["B", "C"]},
        {"id": "B", "state": "Failed", "upstream": ["A"]},
        {"id": "C", "state": "Succeeded", "upstream": ["A"]},
    ]
    assert draw_graph(tasks) == [
        "  [ok] A",
        "    [XX] B  <- A",
        "    [ok] C  <- A",
        "      [--] D  <- B, C",
    ]
    assert draw_graph([{"id": "x", "state": "Queued"}]) == []
    assert draw_graph([{"id": str(i), "state": "Queued", "upstream": ["0"]} for i in range(41)]) == []
