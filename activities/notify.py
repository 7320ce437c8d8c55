"""`notify_job`: POST the finished job's summary to its `notifyUrl`, signed with `X-Acibatch-Signature`.

Raises on any failure so the job orchestrator's retry policy tries again.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from acibatch import durable_names as names
from acibatch.settings import current as settings
from acibatch.tokens import sign_notification
from activities import bp

TIMEOUT_SECONDS = 10


@bp.activity_trigger(input_name="payload", activity=names.NOTIFY_JOB)
def notify_job(payload: dict[str, Any]) -> int:
    body = json.dumps(payload["body"], separators=(",", ":")).encode()
    signature = sign_notification(settings().callback_signing_key, body, int(time.time()))
    request = urllib.request.Request(
        str(payload["url"]),
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-Acibatch-Signature": signature},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        status: int = response.status
    return status
