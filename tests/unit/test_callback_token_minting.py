"""The create activity mints the token its task's event names need: a request from a task that waits under
per-attempt names (`tokenFormat: "v3"`) gets a v3 token; a request without the field, as every create of a task
started before per-attempt names sends it (recorded in its history), gets the v2 token it always got, whose reports
the endpoint raises under the shared name that task waits for."""

from __future__ import annotations

import pytest

from acibatch.messages.aci import CreateGroupInput
from acibatch.plan import TaskInput, task_inputs
from acibatch.tokens import TokenFormat, TokenPurpose, callback_sender, token_format
from activities.aci import group_request
from tests.appsettings import app_settings
from tests.orchestrators.conftest import job_input
from tests.unit.test_settings import VALID


def a_task() -> TaskInput:
    job = job_input(taskCount=1)
    return task_inputs(job, job.job_spec(), 0, 1)[0]


def request_dict(**fields: object) -> dict[str, object]:
    task = a_task()
    create = CreateGroupInput(task=task, name="g1", attempt=2, priority="Regular", owner=task.instance_id,
                              created_at=1700000000)  # fmt: skip
    return {**create.to_dict(), **fields}


@pytest.mark.parametrize(
    ("fields", "minted"),
    [({}, TokenFormat.V2), ({"tokenFormat": "v2"}, TokenFormat.V2), ({"tokenFormat": "v3"}, TokenFormat.V3)],
    ids=["recorded-before", "v2", "v3"],
)
def test_the_request_says_which_token_the_container_gets(fields: dict[str, object], minted: TokenFormat) -> None:
    create = CreateGroupInput.parse(request_dict(**fields))
    with app_settings(VALID):
        token = group_request(create).secure_env["BATCH_CALLBACK_TOKEN"]
    assert token_format(token) is minted and token.startswith(f"{minted}.2.")
    assert callback_sender(token, create.owner, 2, [VALID["BATCH_CALLBACK_SIGNING_KEY"]]) is TokenPurpose.TASK


def test_an_old_request_keeps_its_shape_and_a_v3_one_only_gains_the_field() -> None:
    old = request_dict()
    assert "tokenFormat" not in old and CreateGroupInput.parse(old).to_dict() == old
    new = request_dict(tokenFormat="v3")
    assert CreateGroupInput.parse(new).to_dict() == new
