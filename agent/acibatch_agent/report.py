"""The agent's report to acibatch's callback endpoint."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

RETRIES = 6


def post(body: dict[str, Any], retries: int = RETRIES) -> bool:
    """POST the report with the attempt's bearer token, retried on network errors and 5xx; whether acibatch took
    it. A lost report is not fatal: acibatch's poll reads result.json once the group has ended."""
    url, token = os.environ.get("BATCH_CALLBACK_URL"), os.environ.get("BATCH_CALLBACK_TOKEN")
    if not url or not token:
        print("acibatch agent: no callback configured; acibatch will read result.json", file=sys.stderr)
        return False
    data = json.dumps(body).encode()
    delay = 0.5
    for attempt in range(retries + 1):
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30):
                return True
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == retries:
                print(f"acibatch agent: the report was refused: HTTP {error.code}", file=sys.stderr)
                return False
        except OSError as error:
            if attempt == retries:
                print(f"acibatch agent: the report could not be sent: {type(error).__name__}", file=sys.stderr)
                return False
        time.sleep(delay)
        delay = min(delay * 2, 8)
    return False
