"""devhost's store: a nested transaction is a savepoint, so a failing step undoes only its own writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from devhost.store import Store


def test_a_failed_step_inside_a_batch_rolls_back_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.sqlite")
    with store.transaction():
        store.put("instances", "kept-before", {"n": 1})
        with pytest.raises(RuntimeError), store.transaction():
            store.put("instances", "lost", {"n": 2})
            with store.transaction():
                store.put("instances", "lost-inner", {"n": 3})
            raise RuntimeError("the step fails")
        store.put("instances", "kept-after", {"n": 4})
    store.close()
    reopened = Store(tmp_path / "hub.sqlite")
    assert sorted(item["n"] for item in reopened.load_all("instances")) == [1, 4]


def test_a_failed_batch_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.sqlite")
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction():
            store.put("instances", "step", {"n": 1})
        raise RuntimeError("the batch fails")
    assert list(store.load_all("instances")) == []
    with store.transaction():  # and the store is usable again
        store.put("instances", "next", {"n": 2})
    assert [item["n"] for item in store.load_all("instances")] == [2]


def test_fast_json_falls_back_to_json_for_what_orjson_refuses() -> None:
    from multidict import istr

    from localtools import fastjson

    assert json.loads(fastjson.dumps({istr("Content-Type"): "a", "big": 2**70})) == {"Content-Type": "a", "big": 2**70}
    assert fastjson.dumps_text({"EventType": 4, "IsPlayed": False}) == '{"EventType":4,"IsPlayed":false}'


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
@example({"output": float("nan"), "status": [float("-inf"), 2**70]})
def test_exact_json_writes_what_json_writes_nan_and_infinities_included(value: object) -> None:
    from localtools import fastjson

    # Compared as text read back and written again by `json`: NaN != NaN, but its text is the same.
    expected = json.dumps(json.loads(json.dumps(value)))
    assert json.dumps(json.loads(fastjson.dumps_exact(value))) == expected
