"""How the ARM client authenticates to the local emulator (`acibatch.aci.make_client` uses these)."""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy


class StaticToken:
    """The client insists on a credential even when the auth policy below replaces its use."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class LocalAuthPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
    # The stock bearer policy refuses plain http; the emulator checks the bearer token as ARM does, against its own
    # (containers share its loopback network, so a constant token would let any tenant's container in).
    def __init__(self, token: str) -> None:
        self.token = token

    def on_request(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        request.http_request.headers["Authorization"] = f"Bearer {self.token}"
