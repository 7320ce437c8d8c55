"""The app's entities store their state as text and keep the value it came from: through the SDK's own entity
handler, batches of any size give the answers and the state that parsing the stored text every time gives."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import azure.durable_functions as df
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import entities
from acibatch import tenancy
from acibatch.entitystate import KEPT_PER_ENTITY_TYPE, KeptState, stored_value
from acibatch.settings import current as current_settings
from entities import capacity, jobprogress, tenant
from tests.unit.test_settings import VALID

Handle = Callable[[str], str]
# The SDK warns once per process that entity inputs are decoded without a type; the Functions worker logs it.
pytestmark = pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type")


@pytest.fixture(scope="module")
def handles() -> Iterator[dict[str, Handle]]:
    """The SDK's entity handlers for the app's entities, indexed the way the Functions worker indexes them."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**VALID, "ACI_MAX_GROUPS": "3", "ACI_MAX_CORES": "3"}.items():
            patch.setenv(name, value)
        current_settings.cache_clear()
        yield dict(indexed_entities())
    current_settings.cache_clear()


def indexed_entities() -> Iterator[tuple[str, Handle]]:
    app = df.DFApp()
    app.register_functions(entities.bp)
    for function in app.get_functions():
        yield function.get_trigger().entity_name, function.get_user_function()


Operations = list[tuple[str, Any]]


def run_batch(handle: Handle, key: str, state: str | None, batch: Operations) -> tuple[str | None, list[Any]]:
    """One batch as a host sends it (inputs are JSON text in a JSON string, as the SDK reads them); the new state
    text and each operation's (failed, result)."""
    context = {
        "self": {"name": "entity", "key": key},
        "exists": state is not None,
        "state": state,
        "batch": [{"name": name, "input": json.dumps(json.dumps(data)), "isSignal": False} for name, data in batch],
    }
    answer = json.loads(handle(json.dumps(context)))
    results = [(item["isError"], json.loads(item["result"]) if item["result"] else None) for item in answer["results"]]
    return answer["entityState"], results


def run_all(
    handle: Handle, stored: KeptState[Any], operations: Operations, batch_size: int, keep: bool
) -> tuple[Any, list[Any]]:
    state, results = None, []
    for start in range(0, len(operations), batch_size):
        if not keep:
            stored.kept.clear()  # as if another worker process ran the previous batch
        state, answers = run_batch(handle, "k", state, operations[start : start + batch_size])
        results.extend(answers)
    return stored_value(json.loads(state)) if state else None, results


def request(lease: str, tenant_id: str = "a") -> dict[str, Any]:
    return {"leaseId": lease, "tenant": tenant_id, "cores": 1, "memoryGb": 1.5, "requestedAt": 1764640000.25}


def quota(tenant_id: str) -> dict[str, Any]:
    return {"tenant": tenant_id, "quota": {"maxGroups": 2, "maxCores": 2, "maxMemoryGb": 3, "weight": 1}}


CAPACITY_OPERATIONS: Operations = [
    ("set_quota", quota("a")), ("set_quota", quota("b")),
    *[("acquire", request(f"a{i}")) for i in range(4)], *[("acquire", request(f"b{i}", "b")) for i in range(3)],
    ("release", {"leaseId": "a0", "now": 5.5}), ("release", {"leaseId": "b1", "now": 6}),
    ("acquire", request("a9")), ("no_such_operation", {}), ("release", {"leaseId": "a1", "now": 7}),
]  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 3, len(CAPACITY_OPERATIONS)])
def test_capacity_batches_give_what_parsing_the_state_every_time_gives(
    handles: dict[str, Handle], batch_size: int
) -> None:
    expected = run_all(handles["capacity"], capacity.STORED, CAPACITY_OPERATIONS, 1, keep=False)
    assert run_all(handles["capacity"], capacity.STORED, CAPACITY_OPERATIONS, batch_size, keep=True) == expected
    final, results = expected
    assert [lease["leaseId"] for lease in final["running"]] == ["b0", "a2", "a3"]  # the region holds 3
    assert results[-2][0] is True and "no operation 'no_such_operation'" in results[-2][1]


operation = st.one_of(
    st.tuples(st.just("acquire"), st.builds(request, st.sampled_from("pqrstu"), st.sampled_from("ab"))),
    st.tuples(st.just("release"), st.fixed_dictionaries({"leaseId": st.sampled_from("pqrstu"),
                                                         "now": st.floats(0, 1e9)})),
    st.tuples(st.just("set_quota"), st.builds(quota, st.sampled_from("ab"))),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(operation, max_size=30), st.integers(1, 8))
def test_any_capacity_operations_in_any_batches_agree(
    handles: dict[str, Handle], operations: Operations, batch_size: int
) -> None:
    handle = handles["capacity"]
    expected = run_all(handle, capacity.STORED, operations, 1, keep=False)
    assert run_all(handle, capacity.STORED, operations, batch_size, keep=True) == expected


def test_progress_and_tenant_batches_agree_too(handles: dict[str, Handle]) -> None:
    progress_operations: Operations = [
        ("init", {"total": 3}), ("begin", "t1"), ("set", {"taskId": "t1", "state": "Running"}), ("begin", "t2"),
        ("set", {"taskId": "t2", "state": "NotAState"}), ("set", {"taskId": "t1", "state": "Succeeded"}),
        ("cancel", None), ("begin", "t3"), ("set", {"taskId": "t1", "state": "Running"}),
    ]  # fmt: skip
    tenant_operations: Operations = [
        ("configure", {"quota": quota("a")["quota"], "apiKeyHash": "h"}),
        ("record_usage", {"leaseId": "l1", "cores": 1, "memoryGb": 1.5, "seconds": 2.25}),
        ("record_usage", {"leaseId": "l1", "cores": 1, "memoryGb": 1.5, "seconds": 2.25}),
        ("task_finished", {"outcome": "succeeded"}), ("task_finished", {"outcome": "exploded"}),
        ("register_job", {"jobId": "j", "createdAt": "2026-12-02T00:00:00Z"}),
        ("update_job", {"jobId": "j", "state": "Running"}),
    ]  # fmt: skip
    kinds: list[tuple[str, KeptState[Any], Operations]] = [
        ("jobprogress", jobprogress.STORED, progress_operations),
        ("tenant", tenant.STORED, tenant_operations),
    ]
    for name, stored, operations in kinds:
        expected = run_all(handles[name], stored, operations, 1, keep=False)
        for batch_size in (2, len(operations)):
            assert run_all(handles[name], stored, operations, batch_size, keep=True) == expected
    progress, results = run_all(handles["jobprogress"], jobprogress.STORED, progress_operations, 4, keep=True)
    assert progress == {"total": 3, "cancelled": True, "states": {"t1": "S", "t2": "Q", "t3": "Q"}}
    assert results[4][0] is True and results[7] == (False, {"cancelled": True})


def test_a_state_stored_as_an_object_by_an_earlier_version_still_loads(handles: dict[str, Handle]) -> None:
    state = tenancy.CapacityState.empty(max_groups=3, max_cores=3)
    state, _ = tenancy.set_tenant_quota(state, "a", tenancy.Quota(2, 2, 2))
    old = json.dumps(state.to_dict())  # the SDK stored the dict itself
    new, results = run_batch(handles["capacity"], "region", old, [("acquire", request("x"))])
    [(failed, answer)] = results
    assert not failed and (answer["status"], answer["reason"]) == ("GRANTED", None)
    assert (
        new is not None
        and isinstance(json.loads(new), str)
        and stored_value(json.loads(new))["running"][0]["leaseId"] == "x"
    )


class Context:
    """An entity context with just what `KeptState` uses."""

    def __init__(self, key: str, state: Any) -> None:
        self.entity_key, self.state = key, state

    def get_state(self, initializer: Callable[[], Any] | None = None) -> Any:
        return self.state

    def set_state(self, state: Any) -> None:
        self.state = state


def counting(parsed: list[Any]) -> KeptState[dict[str, Any]]:
    def from_json(data: Any) -> dict[str, Any]:
        parsed.append(data)
        return dict(data or {})

    return KeptState(from_json, dict)


def test_the_next_batch_reuses_the_kept_value_and_other_text_is_parsed() -> None:
    parsed: list[Any] = []
    stored = counting(parsed)
    first = Context("k", None)
    value = stored.load(first)
    stored.store(first, {**value, "n": 1})
    assert parsed == [None]
    again = Context("k", json.loads(json.dumps(first.state)))  # the same text, decoded afresh by the next batch
    assert again.state is not first.state and stored.load(again) == {"n": 1}
    assert parsed == [None]  # not parsed
    stored.store(again, {"n": 2})
    elsewhere = Context("k", json.dumps({"n": 5}))  # written by another process: this one's kept value is stale
    assert stored.load(elsewhere) == {"n": 5} and parsed == [None, {"n": 5}]


def test_a_value_changed_by_an_operation_that_failed_is_not_handed_on() -> None:
    parsed: list[Any] = []
    stored = counting(parsed)
    context = Context("k", None)
    stored.store(context, {"n": 1})
    value = stored.load(context)
    value["n"] = 99  # changed in place, then the operation raised: the SDK keeps the state stored before
    assert stored.load(context) == {"n": 1}


def test_only_the_most_recently_stored_entities_are_kept() -> None:
    parsed: list[Any] = []
    stored = counting(parsed)
    contexts = [Context(f"job{i}", None) for i in range(KEPT_PER_ENTITY_TYPE + 1)]
    for number, context in enumerate(contexts):
        stored.store(context, {"n": number})
    assert len(stored.kept) == KEPT_PER_ENTITY_TYPE and "job0" not in stored.kept
    assert stored.load(contexts[0]) == {"n": 0} and stored.load(contexts[-1]) == {"n": KEPT_PER_ENTITY_TYPE}
    assert parsed == [{"n": 0}]


def test_stored_value_reads_text_and_older_objects() -> None:
    assert stored_value('{"a":[1,2.5]}') == {"a": [1, 2.5]}
    assert stored_value({"a": 1}) == {"a": 1}
    assert stored_value(None) is None


def test_to_dict_hands_out_copies_of_the_stored_form() -> None:
    lease = tenancy.Lease(tenancy.LeaseRequest.from_dict(request("x")), started_at=1.0)
    copy = lease.to_dict()
    copy["tenant"] = "changed"
    assert lease.stored_form["tenant"] == "a" and lease.to_dict()["tenant"] == "a"
