"""The deployed app indexes the way the Functions Python worker indexes it, and matches its OpenAPI document."""

import re
from typing import Any

import azure.functions as func
import pytest
from openapi_spec_validator import validate

from acibatch import durable_names as names
from acibatch.openapi import openapi_document
from acibatch.spec import JOB_FIELDS


@pytest.fixture(scope="module")
def functions() -> list[Any]:
    import function_app

    # get_functions() may be called only once per app object (the worker does exactly that).
    return list(function_app.app.get_functions())


def by_name(functions: list[Any]) -> dict[str, Any]:
    return {f.get_function_name(): f for f in functions}


def test_durable_functions_are_registered_under_their_contract_names(functions: list[Any]) -> None:
    triggers = {f.get_function_name(): f.get_trigger() for f in functions}
    orchestrations = {getattr(t, "orchestration", None) for t in triggers.values() if t.type == "orchestrationTrigger"}
    assert orchestrations == {
        names.JOB_ORCHESTRATOR,
        names.CHUNK_ORCHESTRATOR,
        names.TASK_ORCHESTRATOR,
        names.RECLAIM_ORCHESTRATOR,
        names.SCHEDULE_ORCHESTRATOR,
    }
    activities = {getattr(t, "activity", None) for t in triggers.values() if t.type == "activityTrigger"}
    assert activities == {
        names.CREATE_GROUP,
        names.GET_GROUP_STATE,
        names.RESTART_GROUP,
        names.CLEANUP_GROUP,
        names.WAKE_WAITERS,
        names.CANCEL_TASKS,
        names.NOTIFY_JOB,
        names.RUN_SCHEDULED_JOB,
        names.READ_ATTEMPT_RESULT,
    }
    entities = {getattr(t, "entity_name", None) for t in triggers.values() if t.type == "entityTrigger"}
    assert entities == {
        names.CAPACITY_ENTITY,
        names.TENANT_ENTITY,
        names.PROGRESS_ENTITY,
        names.SCHEDULE_ENTITY,
        names.SCHEDULE_INDEX_ENTITY,
    }
    timer = next(t for t in triggers.values() if t.type == "timerTrigger")
    assert timer.schedule == "%BATCH_SWEEP_SCHEDULE%"


def test_every_http_route_is_anonymous_and_documented(functions: list[Any]) -> None:
    document = openapi_document("http://127.0.0.1:7071/api")
    validate(document)  # type: ignore[arg-type]
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    }
    routed = set()
    for function in functions:
        if not function.is_http_function():
            continue
        trigger = function.get_trigger()
        assert trigger.auth_level == func.AuthLevel.ANONYMOUS
        # A catch-all `{*path}` is documented as the plain path parameter `{path}`.
        path = "/" + re.sub(r"\{\*?(\w+)(:\w+)?\??\}", r"{\1}", trigger.route)
        for method in trigger.methods:
            routed.add((path, str(getattr(method, "value", method)).upper()))
    assert routed == documented


def test_job_spec_schema_lists_exactly_the_fields_the_parser_accepts() -> None:
    schema = openapi_document()["components"]["schemas"]["JobSpec"]
    assert set(schema["properties"]) == JOB_FIELDS
