"""Hostile input: property-based negative testing of every operation in /api/openapi.json (schemathesis).

Whatever arrives, the API answers 4xx with a JSON error (never a 5xx) and no orchestration is started.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.control import SkipTest
from schemathesis.generation import GenerationMode

from acibatch.client import BatchClient
from acibatch.localstack import LocalStack
from acibatch.openapi import openapi_document
from tests.e2e.conftest import make_tenant

pytestmark = pytest.mark.e2e
EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def hostile_tenant(admin: BatchClient) -> BatchClient:
    return make_tenant(admin, "hostile")


def operations(api_url: str) -> list[Any]:
    config = schemathesis.Config.from_dict({"generation": {"mode": "negative"}})
    api = schemathesis.openapi.from_dict(openapi_document(api_url), config=config)
    return [result.ok() for result in api.get_all_operations()]


def test_invalid_requests_get_a_4xx_with_a_message(stack: LocalStack, hostile_tenant: BatchClient) -> None:
    checked = 0
    for operation in operations(stack.api_url):

        @given(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def probe(case: Any) -> None:
            if case.operation.path.startswith("/tenants"):
                case.path_parameters = {**(case.path_parameters or {}), "tenant": "hostile"}
            headers = {"Authorization": f"Bearer {hostile_tenant.key}", **dict(case.headers or {})}
            response = case.call(base_url=stack.api_url, headers=headers)
            assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
            if response.status_code >= 400 and response.content:
                assert response.text.startswith("{"), (case.as_curl_command(), response.text[:200])
                assert response.json()["error"]["message"]

        try:
            probe()
        except SkipTest:
            continue  # an operation with no inputs (health, openapi) has no invalid form
        checked += 1
    assert checked >= 9


def test_no_hostile_request_started_a_job(stack: LocalStack, hostile_tenant: BatchClient) -> None:
    url = f"{stack.host_url}/runtime/webhooks/durabletask/instances/?instanceIdPrefix=job:hostile:"
    with urllib.request.urlopen(url, timeout=30) as response:
        started = json.loads(response.read())
    assert started == []
    assert hostile_tenant.jobs()["total"] == 0
