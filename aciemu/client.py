"""Build the real `azure-mgmt-containerinstance` client (sync or aio) for the emulator.

The SDK's bearer policy refuses plain http, so a local policy replaces it; the credential is still
required by the client constructor even though the policy never calls it.
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
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("emulator", int(time.time()) + 3600)


class EmulatorAuth(SansIOHTTPPolicy):  # type: ignore[type-arg]
    def on_request(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        request.http_request.headers["Authorization"] = "Bearer emulator"


def _options(polling_interval: float, retry_total: int) -> dict[str, Any]:
    return {
        "authentication_policy": EmulatorAuth(),
        "polling_interval": polling_interval,
        "retry_total": retry_total,
        "retry_backoff_factor": 0.05,
    }


def emulator_client(
    base_url: str, subscription_id: str = SUBSCRIPTION, polling_interval: float = 0.1, retry_total: int = 3
) -> ContainerInstanceManagementClient:
    return ContainerInstanceManagementClient(
        StaticToken(),
        subscription_id,
        base_url=base_url,
        **_options(polling_interval, retry_total),
    )


def emulator_client_async(
    base_url: str, subscription_id: str = SUBSCRIPTION, polling_interval: float = 0.1, retry_total: int = 3
) -> AsyncContainerInstanceClient:
    return AsyncContainerInstanceClient(
        StaticToken(),  # type: ignore[arg-type]
        subscription_id,
        base_url=base_url,
        **_options(polling_interval, retry_total),
    )
