"""Turn a polled container group state into what the decision policy reasons about.

Polling is the backstop for callbacks: a container that never calls back still ends its attempt here, by
its exit code, by its group disappearing, by the platform interrupting it (how a Spot eviction shows: see
`GroupState.interruption` for the documented signals it reads) or by a provisioning failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acibatch.aci import GroupState
from acibatch.policy import Observation, ObservationKind


def observation_from_state(data: Mapping[str, Any] | GroupState, restarts_requested: int = 0) -> Observation | None:
    """The observation a poll makes, or None while the container is still starting or running.

    `restarts_requested`: how often this attempt restarted its group itself, so those restarts are not taken for
    the platform's.
    """
    state = data if isinstance(data, GroupState) else GroupState.from_dict(data)
    if not state.exists:
        return Observation(kind=ObservationKind.LOST, message="the container group no longer exists")
    if state.provisioning_state == "Failed" and state.container_state != "Terminated":
        return Observation(
            kind=ObservationKind.CREATE_FAILED,
            arm_message=state.failure or "provisioning of the container group failed",
        )
    # `finished` covers a terminated task container, unless an agent group's sidecar is still uploading.
    if state.finished:
        return Observation(
            kind=ObservationKind.EXITED,
            exit_code=state.exit_code,
            message=state.detail_status or state.failure,
        )
    # After the exit check: a container that finished after being restarted by ACI has simply exited.
    interruption = state.interruption(restarts_requested)
    if interruption is not None:
        return Observation(kind=ObservationKind.EVICTED, message=interruption)
    if state.container_state == "Waiting" and state.failure:
        return Observation(kind=ObservationKind.NOT_STARTED, message=state.failure)
    return None
