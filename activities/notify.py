"""`notify_job`: POST the finished job's summary to its `notifyUrl`, signed with `X-Acibatch-Signature`.

The URL is the tenant's, so it goes through `acibatch.outbound`: a URL that reaches an internal address, directly,
through DNS or through a redirect, is refused and the reason returned as `{"refused": ...}` (trying again would
be refused again). Raises on other failures (a network error, a non-2xx answer) so the job orchestrator's retry
policy tries again and records the last error.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

from acibatch import durable_names as names
from acibatch.messages.jobs import Notification, NotifyResult
from acibatch.outbound import OutboundFailed, OutboundRefused
from acibatch.outbound_post import post
from acibatch.settings import current as settings
from acibatch.tokens import sign_notification
from activities import bp


@bp.activity_trigger(input_name="payload", activity=names.NOTIFY_JOB)
def notify_job(payload: object) -> dict[str, Any]:
    # Typed `object` for the Python worker (see devhost/workerrules.py); the message is parsed here.
    notification = Notification.parse(cast(dict[str, Any], payload))
    config = settings()
    body = json.dumps(notification.body, separators=(",", ":")).encode()
    signature = sign_notification(config.callback_signing_key, body, int(time.time()))
    headers = {"Content-Type": "application/json", "X-Acibatch-Signature": signature}
    try:
        response = post(notification.url, body, headers, config.outbound)
    except OutboundRefused as refused:
        return NotifyResult(refused=f"notifyUrl refused: {refused}").to_dict()
    if not 200 <= response.status < 300:
        raise OutboundFailed(f"notifyUrl answered HTTP {response.status}; a 2xx confirms delivery")
    return NotifyResult(status=response.status).to_dict()
