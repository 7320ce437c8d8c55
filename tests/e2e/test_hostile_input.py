"""The API against its own OpenAPI document: schemathesis, with the document the stack serves.

Every operation is exercised with schema-valid (positive) and schema-violating (negative) requests, bounded
per operation, and each response is checked: never a 5xx; status codes, content types, headers and bodies as
documented; invalid requests refused; valid requests accepted, except for the cross-field rules the document
states in words because JSON Schema cannot (unique task ids, a variable in `env` or `secureEnv`, not both).
Requests are pinned where a generated one would change shared state: a generated job spec is submitted under
the id of an existing job (so it is validated, then refused as a conflict, and nothing starts), and tenant
administration only ever touches a tenant kept for it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.control import SkipTest
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from acibatch.naming import TENANT_RULE
from localdev.client import BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import make_tenant, python_job, wait_job

pytestmark = pytest.mark.e2e
EXAMPLES_PER_OPERATION = 30
HOSTILE = "hostile"
ADMINISTERED = "hostile-quota"  # the tenant the admin operations may create, update and re-key
PINNED_JOB = "hostile-pinned"
NO_INPUTS = {"/health", "/openapi.json"}
# Documented in JobSpec's description; JSON Schema cannot express them, so a schema-valid spec may break them.
CROSS_FIELD_RULES = ("is also set in env", "task ids must be unique")
TOML = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 409, 413]
[checks.positive_data_acceptance]
expected-statuses = ["2XX", 401, 403, 404, 409]
"""
# Checks that need state across requests (resources created and reused) or judge the host's routing, not the API.
STATEFUL_CHECKS = [
    "use_after_free", "ensure_resource_availability", "ignored_auth", "object_level_authorization",
    "unsupported_method", "allow_header_conformance",
]  # fmt: skip
CONFIG = {
    # 413 refuses an oversized body as documented; schemathesis's default list of refusals lacks it.
    "checks": {
        "negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 409, 413]},
        "positive_data_acceptance": {"expected-statuses": ["2XX", 401, 403, 404, 409]},
    }
}


@pytest.fixture(scope="module")
def hostile_tenant(admin: BatchClient) -> BatchClient:
    return make_tenant(admin, HOSTILE)


@pytest.fixture(scope="module")
def pinned_job(hostile_tenant: BatchClient) -> str:
    hostile_tenant.submit(python_job("pass", jobId=PINNED_JOB))
    wait_job(hostile_tenant, PINNED_JOB)
    return PINNED_JOB


def operations(api_url: str) -> list[Any]:
    # Loaded over HTTP, as a client would: what is checked is the document the app serves.
    api = schemathesis.openapi.from_url(f"{api_url}/openapi.json", config=schemathesis.Config.from_dict(CONFIG))
    return [result.ok() for result in api.get_all_operations()]


def pin(case: Any, mode: GenerationMode) -> None:
    """Keep generated requests away from shared state, and give valid ones something that exists."""
    operation = case.operation.definition.raw.get("operationId")
    params = case.path_parameters or {}
    if "tenant" in params and (TENANT_RULE.fullmatch(str(params["tenant"])) or mode is GenerationMode.POSITIVE):
        # A valid tenant id: the admin operations would create or re-key it. Reads look at the real tenant.
        params["tenant"] = HOSTILE if operation == "getTenant" else ADMINISTERED
    if mode is GenerationMode.POSITIVE and "jobId" in params:
        params["jobId"] = PINNED_JOB
        if "taskId" in params:
            params["taskId"] = "0"
    if (
        operation == "submitJob"
        and isinstance(case.body, dict)
        and (mode is GenerationMode.POSITIVE or "jobId" in case.body)
    ):
        case.body["jobId"] = PINNED_JOB
    if operation == "putSchedule" and mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
        # A valid cron and zone follow rules stated in words (like CROSS_FIELD_RULES), and a generated schedule
        # must not start jobs on the shared stack: a valid, suspended, yearly one.
        case.body.update({"schedule": {"cron": "0 0 1 1 *"}, "suspend": True})
        for bound in ("doNotRunUntil", "doNotRunAfter"):
            case.body.pop(bound, None)
    case.path_parameters = params


def only_cross_field_rules(response: Any) -> bool:
    if response.status_code != 400:
        return False
    details = response.json()["error"].get("details") or [{}]
    return all(any(rule in str(detail.get("message")) for rule in CROSS_FIELD_RULES) for detail in details)


def key_for(case: Any, stack: LocalStack, tenant: BatchClient) -> str:
    return stack.admin_key if case.operation.path.startswith("/tenants") else tenant.key or ""


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_the_api_behaves_as_its_document_says(
    stack: LocalStack, hostile_tenant: BatchClient, pinned_job: str, mode: GenerationMode
) -> None:
    checked = 0
    for operation in operations(stack.api_url):

        @given(operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def probe(case: Any) -> None:
            pin(case, mode)
            headers = dict(case.headers or {})
            # A header-level negative case without Authorization is the "no credentials" case: keep it so.
            if not (case.meta and case.meta.is_negative_at(ParameterLocation.HEADER)) or "Authorization" in headers:
                headers = {"Authorization": f"Bearer {key_for(case, stack, hostile_tenant)}", **headers}
            response = case.call(base_url=stack.api_url, headers=headers)
            assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
            # A schema-valid spec may still break a rule stated only in words: that 400 is the documented answer.
            excluded = [positive_data_acceptance] if only_cross_field_rules(response) else []
            case.validate_response(response, headers=headers, excluded_checks=excluded)
            if response.status_code >= 400 and response.content:
                assert response.json()["error"]["message"], case.as_curl_command()

        try:
            probe()
        except (SkipTest, Unsatisfiable):
            if operation.path not in NO_INPUTS:
                raise
            continue  # an operation with no inputs has no invalid form
        checked += 1
    assert checked >= (8 if mode is GenerationMode.NEGATIVE else 10), checked


def test_the_schemathesis_cli_finds_no_disagreement(
    stack: LocalStack, hostile_tenant: BatchClient, tmp_path: Path
) -> None:
    """The `st` command as a user would run it, with its coverage phase: systematic boundary and type cases
    (an empty query value, the largest integer, each wrong type) that random generation rarely draws.

    Submitting jobs, tenant administration and schedules change shared state (a schedule starts jobs, and its
    cron and time zone are rules JSON Schema cannot state), so the pinned test above covers those;
    here run the reads, cancel (of ids that do not exist) and callbacks (with no valid token).
    """
    (tmp_path / "schemathesis.toml").write_text(TOML)
    command = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(tmp_path / "schemathesis.toml"), "run",
        f"{stack.api_url}/openapi.json", "-H", f"Authorization: Bearer {hostile_tenant.key}",
        "--phases", "examples,coverage,fuzzing", "--max-examples", str(EXAMPLES_PER_OPERATION), "--workers", "1",
        "--checks", "all", "--exclude-checks", ",".join(STATEFUL_CHECKS),
        "--exclude-operation-id", "submitJob", "--exclude-operation-id", "putTenant",
        "--exclude-operation-id", "rotateTenantKey", "--exclude-operation-id", "putSchedule", "--no-color",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counts is not None and counts[1] == counts[2] and int(counts[1]) >= 100, done.stdout[-3000:]


def test_no_generated_request_started_a_job(hostile_tenant: BatchClient) -> None:
    # Every submit registers the job with its tenant before starting it, so the tenant's list shows any start.
    assert [job["jobId"] for job in hostile_tenant.jobs()["jobs"]] == [PINNED_JOB]
