"""Build the real `azure-mgmt-containerinstance` client (sync or aio) for the emulator.

The SDK's bearer policy refuses plain http, so a local policy replaces it and sends the emulator's token
(`AciEmulatorProcess.token`); the credential is still required by the client constructor even though the
policy never calls it.
"""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient as AsyncContainerInstanceClient

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"


class StaticToken:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class EmulatorAuth(SansIOHTTPPolicy):  # type: ignore[type-arg]
    def __init__(self, token: str) -> None:
        self.token = token

    def on_request(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        request.http_request.headers["Authorization"] = f"Bearer {self.token}"


def _options(token: str, polling_interval: float, retry_total: int) -> dict[str, Any]:
    return {
        "authentication_policy": EmulatorAuth(token),
        "polling_interval": polling_interval,
        "retry_total": retry_total,
        "retry_backoff_factor": 0.05,
    }


def emulator_client(
    base_url: str,
    token: str,
    subscription_id: str = SUBSCRIPTION,
    polling_interval: float = 0.1,
    retry_total: int = 3,
) -> ContainerInstanceManagementClient:
    return ContainerInstanceManagementClient(
        StaticToken(token),
        subscription_id,
        base_url=base_url,
        **_options(token, polling_interval, retry_total),
    )


def emulator_client_async(
    base_url: str,
    token: str,
    subscription_id: str = SUBSCRIPTION,
    polling_interval: float = 0.1,
    retry_total: int = 3,
) -> AsyncContainerInstanceClient:
    return AsyncContainerInstanceClient(
        StaticToken(token),  # type: ignore[arg-type]
        subscription_id,
        base_url=base_url,
        **_options(token, polling_interval, retry_total),
    )
