"""devhost indexes an app the way Azure's Python worker does: one function it refuses, and no function runs.

The expected messages are the worker's (Azure/azure-functions-python-worker, azure_functions_worker/functions.py,
`Registry.add_indexed_function`, Python 3.11), as the host logs them after "Worker failed to index functions".
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from devhost.launcher import DevhostProcess, ServiceFailed
from devhost.workerrules import WorkerIndexingError, check_function

REPO_ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parent / "apps"

PRELUDE = """\
import collections.abc
import typing
from typing import TYPE_CHECKING, Any, Optional, Union

import azure.durable_functions as df
import azure.functions as func

if TYPE_CHECKING:
    from decimal import Decimal

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
"""


def index_one(code: str, *, postponed: bool) -> Any:
    """Index a one-function app, with its annotations as strings (`from __future__ import annotations`) or not."""
    source = ("from __future__ import annotations\n" if postponed else "") + PRELUDE + textwrap.dedent(code)
    namespace: dict[str, Any] = {"__name__": "indexed_case"}
    # dont_inherit: this test module's own `from __future__ import annotations` must not leak into the case.
    exec(compile(source, "<indexed case>", "exec", dont_inherit=True), namespace)
    (function,) = namespace["app"].get_functions()
    return function


def worker_verdict(code: str, *, postponed: bool) -> str | None:
    """None when the worker indexes the function, else what it reports to the host."""
    try:
        check_function(index_one(code, postponed=postponed))
    except WorkerIndexingError as error:
        return error.worker_message
    return None


def activity(annotation: str | None) -> str:
    parameter = "payload" if annotation is None else f"payload: {annotation}"
    return f"@app.activity_trigger(input_name='payload')\ndef act({parameter}) -> None:\n    pass\n"


def load_error(function: str, detail: str) -> str:
    return f"FunctionLoadError: cannot load the {function} function: {detail}"


def non_type(annotation: str) -> str:
    return load_error("act", f"binding payload has invalid non-type annotation {annotation}")


# (annotation of an activity's input, what the worker says: None when it accepts the function)
ACTIVITY_INPUTS = [
    # Classes: the activityTrigger converter accepts any.
    ("dict", None),
    ("list", None),
    ("str", None),
    ("bytes", None),
    ("int", None),
    ("float", None),
    ("bool", None),
    ("object", None),
    ("Any", None),  # a class since Python 3.11
    ("None", None),  # becomes NoneType
    (None, None),  # unannotated
    # typing's own aliases pass the worker's "generic type" test.
    ("typing.Dict[str, Any]", None),
    ("typing.List[str]", None),
    ("typing.Mapping[str, Any]", None),
    # PEP 585 generics are types.GenericAlias: neither a class on 3.11 nor a typing alias (durable-python #468).
    ("dict[str, Any]", non_type("dict[str, typing.Any]")),
    ("list[str]", non_type("list[str]")),
    ("tuple[str, int]", non_type("tuple[str, int]")),
    ("collections.abc.Mapping[str, Any]", non_type("collections.abc.Mapping[str, typing.Any]")),
    ("dict | None", non_type("dict | None")),
    # typing aliases the worker's test leaves out on purpose.
    ("typing.Tuple[str, int]", non_type("typing.Tuple[str, int]")),
    ("typing.Callable[[int], int]", non_type("typing.Callable[[int], int]")),
    # Unions fail earlier, in the SDK-type probe of azurefunctions-extensions-base that the worker ships with.
    ("Optional[dict]", "TypeError: issubclass() arg 1 must be a class"),
    ("Union[str, int]", "TypeError: issubclass() arg 1 must be a class"),
    ("func.Out[str]", (
        "FunctionLoadError: cannot load the act function: binding payload is declared to have the \"in\" "
        "direction in function.json, but its annotation is azure.functions.Out in Python"
    )),
]  # fmt: skip


@pytest.mark.parametrize("postponed", [False, True], ids=["evaluated", "future-annotations"])
@pytest.mark.parametrize(("annotation", "verdict"), ACTIVITY_INPUTS, ids=[str(a) for a, _ in ACTIVITY_INPUTS])
def test_activity_input_annotations(annotation: str | None, verdict: str | None, postponed: bool) -> None:
    # The worker evaluates string annotations with typing.get_type_hints, so both spellings get the same verdict.
    assert worker_verdict(activity(annotation), postponed=postponed) == verdict


# (function source, what the worker says: None when it accepts the function)
OTHER_RULES = {
    "activity returns a PEP 585 generic (implicit output: not checked)": (
        "@app.activity_trigger(input_name='payload')\ndef act(payload: dict) -> dict[str, Any]:\n    return {}\n",
        None,
    ),
    "orchestrator context typed anything (the SDK indexes its own wrapper)": (
        "@app.orchestration_trigger(context_name='context')\ndef orch(context: dict[str, Any]):\n    yield 1\n",
        None,
    ),
    "entity context typed anything (the SDK indexes its own wrapper)": (
        "@app.entity_trigger(context_name='context')\ndef ent(context: list[str]) -> None:\n    pass\n",
        None,
    ),
    "durable client typed as the SDK's client (the SDK retypes it str)": (
        "@app.activity_trigger(input_name='payload')\n@app.durable_client_input(client_name='client')\n"
        "async def act(payload: dict, client: df.DurableOrchestrationClient) -> int:\n    return 1\n",
        None,
    ),
    "http function returning HttpResponse": (
        "@app.route(route='x')\ndef h(req: func.HttpRequest) -> func.HttpResponse:\n    return func.HttpResponse()\n",
        None,
    ),
    "http function returning str": (
        "@app.route(route='x')\ndef h(req: func.HttpRequest) -> str:\n    return ''\n",
        None,
    ),
    "http function returning dict": (
        "@app.route(route='x')\ndef h(req: func.HttpRequest) -> dict:\n    return {}\n",
        load_error("h", 'Python return annotation "dict" does not match binding type "http"'),
    ),
    "http function returning a PEP 585 generic": (
        "@app.route(route='x')\ndef h(req: func.HttpRequest) -> dict[str, Any]:\n    return {}\n",
        load_error("h", "has invalid non-type return annotation dict[str, typing.Any]"),
    ),
    "http function returning Optional": (
        "@app.route(route='x')\ndef h(req: func.HttpRequest) -> Optional[func.HttpResponse]:\n    return None\n",
        load_error("h", "has invalid non-type return annotation typing.Optional[azure.functions._http.HttpResponse]"),
    ),
    "http function returning None": (
        "@app.route(route='x')\ndef h(req: func.HttpRequest) -> None:\n    return None\n",
        load_error("h", 'Python return annotation "NoneType" does not match binding type "http"'),
    ),
    "http request typed dict": (
        "@app.route(route='x')\ndef h(req: dict) -> str:\n    return ''\n",
        load_error(
            "h",
            "'req' binding type \"httpTrigger\" and dataType \"None\" in function.json do not match the "
            "corresponding function parameter's Python type annotation \"dict\"",
        ),
    ),
    "timer typed TimerRequest": (
        "@app.timer_trigger(schedule='0 * * * * *', arg_name='timer')\ndef t(timer: func.TimerRequest) -> None:\n"
        "    pass\n",
        None,
    ),
    "timer typed typing.Dict (the converter's issubclass fails)": (
        "@app.timer_trigger(schedule='0 * * * * *', arg_name='timer')\ndef t(timer: typing.Dict[str, Any]) -> None:\n"
        "    pass\n",
        "TypeError: issubclass() arg 1 must be a class",
    ),
    "a parameter that is no binding": (
        "@app.activity_trigger(input_name='payload')\ndef act(payload: dict, extra: int = 0) -> None:\n    pass\n",
        load_error("act", "the following parameters are declared in Python but not in function.json: {'extra'}"),
    ),
    "context typed func.Context": (
        "@app.activity_trigger(input_name='payload')\ndef act(payload: dict, context: func.Context) -> None:\n"
        "    pass\n",
        None,
    ),
    "context typed otherwise": (
        "@app.activity_trigger(input_name='payload')\ndef act(payload: dict, context: dict) -> None:\n    pass\n",
        load_error(
            "act", "the \"context\" parameter is expected to be of type azure.functions.Context, got <class 'dict'>"
        ),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(OTHER_RULES))
def test_the_other_indexing_rules(case: str) -> None:
    code, verdict = OTHER_RULES[case]
    assert worker_verdict(code, postponed=True) == verdict
    assert worker_verdict(code, postponed=False) == verdict


def test_a_name_imported_only_for_type_checkers_fails_the_whole_app() -> None:
    # With postponed annotations the worker still evaluates them (typing.get_type_hints) when it indexes.
    assert worker_verdict(activity("Decimal"), postponed=True) == "NameError: name 'Decimal' is not defined"


INDEX_IN_A_FRESH_PROCESS = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
import azure.functions as func
from devhost.workerrules import WorkerIndexingError, check_function
module = importlib.import_module("function_app")
(app,) = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
refused, kinds = [], {}
for function in app.get_functions():
    kinds[function.get_trigger().type] = kinds.get(function.get_trigger().type, 0) + 1
    try:
        check_function(function)
    except WorkerIndexingError as error:
        refused.append(str(error))
print(json.dumps({"refused": refused, "kinds": kinds}))
"""


def index_app_in_a_fresh_process(app_dir: Path) -> dict[str, Any]:
    # A fresh interpreter: get_functions() may run once per app object, and other tests import function_app too.
    result = subprocess.run(
        [sys.executable, "-c", INDEX_IN_A_FRESH_PROCESS, str(app_dir)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=True,
    )
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_every_function_of_the_real_app_passes_the_worker_checks() -> None:
    indexed = index_app_in_a_fresh_process(REPO_ROOT)
    assert indexed["refused"] == []
    assert indexed["kinds"] == {
        "httpTrigger": 29,
        "orchestrationTrigger": 5,
        "activityTrigger": 9,
        "entityTrigger": 5,
        "timerTrigger": 1,
    }


@pytest.mark.parametrize(("app", "count"), [("features", 37), ("../../../bench/app", 4)])
def test_devhosts_own_apps_pass_the_worker_checks(app: str, count: int) -> None:
    indexed = index_app_in_a_fresh_process((APPS / app).resolve())
    assert indexed["refused"] == []
    assert sum(indexed["kinds"].values()) == count


@pytest.mark.e2e
def test_devhost_refuses_an_app_whose_activity_input_is_a_pep585_generic(tmp_path: Path) -> None:
    with (
        pytest.raises(ServiceFailed) as failed,
        DevhostProcess(APPS / "generic_annotation", tmp_path / "data", log_path=tmp_path / "devhost.log"),
    ):
        pass
    report = str(failed.value)
    assert "exited with 2" in report
    assert (
        "FunctionLoadError: cannot load the merge_settings function: "
        "binding payload has invalid non-type annotation dict[str, typing.Any]"
    ) in report
    assert "Worker failed to index functions" in report
    assert "To fix: annotate each binding parameter with a plain class" in report
    # Like the host, devhost serves none of the app's functions, not even the valid ones.
    assert "status_page" not in report and "listening" not in report
