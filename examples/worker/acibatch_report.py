"""Report a task's progress and outcome to acibatch from inside its container (Python 3 stdlib only).

acibatch starts every task attempt with these environment variables:
  BATCH_CALLBACK_URL    where to POST reports (already names the job, task and tenant)
  BATCH_CALLBACK_TOKEN  this attempt's bearer token (a secure value: never print it)
  BATCH_JOB_ID, BATCH_TASK_ID, BATCH_TASK_INDEX, BATCH_ATTEMPT

Use it as a module (`from acibatch_report import succeeded; succeeded({"answer": 42})`) or from a shell:
  python3 acibatch_report.py succeeded --result '{"answer": 42}'
  python3 acibatch_report.py failed --exit-code 3 --message "input missing"
  python3 acibatch_report.py progress --progress '{"done": 10, "of": 100}'

Reports are retried on network errors and 5xx answers; repeating a report is harmless. If no callback
reaches acibatch, the task still finishes: acibatch polls the container's exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

RETRIES = 5


def _post(body: dict[str, Any], retries: int = RETRIES) -> dict[str, Any]:
    url = os.environ["BATCH_CALLBACK_URL"]
    token = os.environ["BATCH_CALLBACK_TOKEN"]
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
            with urllib.request.urlopen(request, timeout=30) as response:
                answer: dict[str, Any] = json.loads(response.read() or b"{}")
                return answer
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == retries:
                raise RuntimeError(f"acibatch refused the report: HTTP {error.code} {error.read()[:500]!r}") from None
        except OSError:
            if attempt == retries:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 8)
    raise AssertionError("unreachable")


def succeeded(result: Any = None, message: str | None = None) -> dict[str, Any]:
    return _post({"status": "succeeded", "exitCode": 0, "result": result, "message": message})


def failed(message: str, exit_code: int = 1, result: Any = None) -> dict[str, Any]:
    return _post({"status": "failed", "exitCode": exit_code, "message": message, "result": result})


def progress(value: Any) -> dict[str, Any]:
    return _post({"status": "progress", "progress": value})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Report to acibatch from a task container.")
    parser.add_argument("status", choices=["succeeded", "failed", "progress"])
    parser.add_argument("--result", type=json.loads, default=None, help="small JSON result")
    parser.add_argument("--progress", type=json.loads, default=None, help="JSON progress value")
    parser.add_argument("--message", default=None)
    parser.add_argument("--exit-code", type=int, default=1)
    args = parser.parse_args(argv)
    if args.status == "succeeded":
        succeeded(args.result, args.message)
    elif args.status == "failed":
        failed(args.message or "failed", args.exit_code, args.result)
    else:
        progress(args.progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
