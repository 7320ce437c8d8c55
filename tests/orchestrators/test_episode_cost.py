"""`orchestrators.episodecost`: the SDK's executor class is made once per worker and the strict-typing setting read
once, and replays answer the same."""

from __future__ import annotations

import collections
import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.TaskOrchestrationExecutor import TaskOrchestrationExecutor

from orchestrators import episodecost
from tests.golden.replay import context_json, run_handle
from tests.golden.test_golden_replay import goldens

pytestmark = pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type")


@pytest.fixture
def stock_executor() -> Any:
    """The executor module and the codec as the stock SDK has them, put back as they were after the test."""
    module, codec = episodecost.EXECUTOR_MODULE, episodecost.CODEC_MODULE
    before = module.namedtuple, codec._is_strict_mode
    module.namedtuple = collections.namedtuple
    codec._is_strict_mode = inspect.unwrap(codec._is_strict_mode)
    yield module
    module.namedtuple, codec._is_strict_mode = before


def test_the_internals_it_replaces_are_there(stock_executor: Any) -> None:
    assert stock_executor.namedtuple is collections.namedtuple
    assert "namedtuple(" in Path(stock_executor.__file__).read_text()  # the constructor still makes its class there
    codec = episodecost.CODEC_MODULE
    assert episodecost._is_stock_strict_mode(codec._is_strict_mode)
    assert "_is_strict_mode()" in inspect.getsource(codec.df_dumps)  # still asked on every encode


def test_installing_replaces_only_the_stock_ones_and_only_once(stock_executor: Any) -> None:
    assert episodecost.install() == ["namedtuple", "_is_strict_mode"]
    assert stock_executor.namedtuple is episodecost.reused_namedtuple
    assert not episodecost._is_stock_strict_mode(episodecost.CODEC_MODULE._is_strict_mode)
    assert episodecost.install() == []  # installed already
    other = object()
    stock_executor.namedtuple = other  # e.g. devhost's fast paths, installed before the app is imported
    assert episodecost.install() == [] and stock_executor.namedtuple is other


def test_the_strict_typing_setting_is_read_once_as_installed(
    stock_executor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    codec = episodecost.CODEC_MODULE
    for value, strict in (("1", True), ("no", False)):
        monkeypatch.setenv("AZURE_FUNCTIONS_DURABLE_STRICT_TYPING", value)
        codec._is_strict_mode = inspect.unwrap(codec._is_strict_mode)
        episodecost.install()
        monkeypatch.setenv("AZURE_FUNCTIONS_DURABLE_STRICT_TYPING", "0" if strict else "yes")
        assert codec._is_strict_mode() is strict  # as the worker started
        assert inspect.unwrap(codec._is_strict_mode)() is not strict  # the stock one reads the environment


def test_executors_share_one_class_and_build_the_same_mapping(stock_executor: Any) -> None:
    stock = TaskOrchestrationExecutor().event_to_SetTaskValuePayload
    episodecost.install()
    first, second = TaskOrchestrationExecutor(), TaskOrchestrationExecutor()
    assert first.event_to_SetTaskValuePayload == stock
    payloads = [next(iter(executor.event_to_SetTaskValuePayload.values())) for executor in (first, second)]
    assert type(payloads[0]) is type(payloads[1])  # one class, not one per episode
    assert payloads[0]._fields == ("is_success", "task_id_key")


def test_other_call_shapes_get_a_new_class_as_before() -> None:
    spaced = episodecost.reused_namedtuple("P", "a b")
    assert spaced._fields == ("a", "b") and spaced is not episodecost.reused_namedtuple("P", "a b")
    renamed = episodecost.reused_namedtuple("P", ["a", "a"], rename=True)
    assert renamed._fields == ("a", "_1")


@pytest.mark.parametrize("scenario", ["success", "retry", "timeout", "workflow", "agent", "cancel"])
def test_replays_answer_the_same_with_and_without_it(scenario: str, stock_executor: Any) -> None:
    bodies = [(g["orchestrator"], context_json(g)) for g in goldens()[scenario]["generations"]]
    stock = [run_handle(orchestrator, body) for orchestrator, body in bodies]
    episodecost.install()
    reused = [run_handle(orchestrator, body) for orchestrator, body in bodies]
    assert json.dumps(reused, sort_keys=True) == json.dumps(stock, sort_keys=True)
