"""The parts the acibatch agent adds to a task's container group (issue 24; the contract in the agent's README).

An init container stages the inputs into a shared `emptyDir` volume, the task container runs the user's command
through the agent's wrapper (which records its exit code on the volume, so an ACI restart never runs user code
twice), and a sidecar streams the logs to blob storage, uploads the outputs, writes result.json and calls back.
The manifest (SAS URLs) reaches only the agent's containers, through a `secret` volume: ACI keeps secret volume
contents out of every GET (REST spec, Volume.secret), and the task container does not mount it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field

from azure.mgmt.containerinstance.models import (
    Container,
    EnvironmentVariable,
    InitContainerDefinition,
    ResourceRequests,
    ResourceRequirements,
    Volume,
    VolumeMount,
)

SHARED_VOLUME = "acibatch"
SECRETS_VOLUME = "acibatch-secrets"
SHARED_PATH = "/acibatch"
SECRETS_PATH = "/acibatch-secrets"
MANIFEST_FILE = "manifest.json"
WORK_DIR = f"{SHARED_PATH}/wd"
WRAPPER = f"{SHARED_PATH}/bin/run"
STAGEIN_NAME = "acibatch-stagein"
SIDECAR_NAME = "acibatch-agent"
AGENT_MODULE = ("python3", "-m", "acibatch_agent")
# What the sidecar needs of the task's environment: where to report. How (its bearer token) is its own.
SIDECAR_ENV = ("BATCH_CALLBACK_URL",)
TOKEN_ENV = "BATCH_CALLBACK_TOKEN"
# How long the sidecar waits for the task container's wrapper to begin before it reports the attempt as never
# started (the agent's sidecar.py reads it; its own default is the app setting's).
START_TIMEOUT_ENV = "ACIBATCH_START_TIMEOUT"


def start_timeout(setting_seconds: int, task_timeout_seconds: int) -> int:
    """The sidecar's wait for the wrapper: BATCH_AGENT_START_TIMEOUT_SECONDS, never more than the task's timeout
    (a task cannot have waited longer than it may run)."""
    return max(1, min(setting_seconds, task_timeout_seconds))


@dataclass(frozen=True)
class AgentPart:
    """The agent's share of one group: its image, the attempt's manifest JSON (secret), the sidecar's request and
    its callback token (secret; the agent token of `acibatch.tokens`, never the task's: only the sidecar may report
    `completed`, and the task container does not get this token)."""

    image: str
    manifest: str = field(repr=False)
    cpu: float
    memory_gb: float
    callback_token: str = field(default="", repr=False)
    start_timeout_seconds: int | None = None  # None: the agent's own default


@dataclass(frozen=True)
class AgentPieces:
    task_command: list[str]
    task_env: list[EnvironmentVariable]
    task_mounts: list[VolumeMount]
    init_containers: list[InitContainerDefinition]
    sidecar: Container
    volumes: list[Volume]


def _mounts(with_secrets: bool) -> list[VolumeMount]:
    shared = VolumeMount(name=SHARED_VOLUME, mount_path=SHARED_PATH)
    if not with_secrets:
        return [shared]
    return [shared, VolumeMount(name=SECRETS_VOLUME, mount_path=SECRETS_PATH, read_only=True)]


def agent_pieces(
    agent: AgentPart, command: tuple[str, ...], env: Mapping[str, str], secure_env: Mapping[str, str]
) -> AgentPieces:
    """What an agent task's group holds besides the task container's image and resources."""
    if not command:
        # The wrapper runs the command it is given; an image's default command cannot be wrapped from outside.
        raise ValueError("a task that runs with the agent needs a command")
    if not agent.callback_token or agent.callback_token == secure_env.get(TOKEN_ENV):
        # The sidecar's report ends the attempt: with no token of its own it could not report, and with the task's
        # the user's code could report for it.
        raise ValueError("the agent's sidecar needs a callback token of its own (the agent token)")
    sidecar_env = [EnvironmentVariable(name=name, value=env[name]) for name in SIDECAR_ENV if name in env]
    if agent.start_timeout_seconds is not None:
        sidecar_env.append(EnvironmentVariable(name=START_TIMEOUT_ENV, value=str(agent.start_timeout_seconds)))
    sidecar_env.append(EnvironmentVariable(name=TOKEN_ENV, secure_value=agent.callback_token))
    manifest = base64.b64encode(agent.manifest.encode()).decode()
    return AgentPieces(
        task_command=["/bin/sh", WRAPPER, *command],
        # Batch's name for the working directory, and the agent's own; the wrapper does not cd, so the image's
        # WORKDIR stays the working directory, as for a task without the agent.
        task_env=[
            EnvironmentVariable(name="AZ_BATCH_TASK_WORKING_DIR", value=WORK_DIR),
            EnvironmentVariable(name="ACIBATCH_WORK_DIR", value=WORK_DIR),
        ],
        task_mounts=_mounts(with_secrets=False),
        init_containers=[
            InitContainerDefinition(
                name=STAGEIN_NAME, image=agent.image, command=[*AGENT_MODULE, "stage-in"], volume_mounts=_mounts(True)
            )
        ],
        sidecar=Container(
            name=SIDECAR_NAME,
            image=agent.image,
            command=[*AGENT_MODULE, "sidecar"],
            environment_variables=sidecar_env,
            resources=ResourceRequirements(requests=ResourceRequests(cpu=agent.cpu, memory_in_gb=agent.memory_gb)),
            volume_mounts=_mounts(with_secrets=True),
        ),
        volumes=[
            Volume(name=SHARED_VOLUME, empty_dir={}),
            Volume(name=SECRETS_VOLUME, secret={MANIFEST_FILE: manifest}),
        ],
    )
