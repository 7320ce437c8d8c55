"""`acibatch schedule ...`: create, list, show, suspend, resume, trigger and delete job schedules (tenant key).

Run times are printed in the schedule's own time zone, as its cron reads them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from localdev.client import BatchClient

ACTIONS = ("create", "list", "show", "suspend", "resume", "trigger", "delete")


class ScheduleFileError(Exception):
    """The schedule file cannot be used: the message says why."""


def add_parser(commands: Any) -> None:
    schedule = commands.add_parser("schedule", help="recurring jobs: create FILE | list | show | suspend | resume | "
                                   "trigger | delete ID (tenant key)")  # fmt: skip
    schedule.add_argument("action", choices=ACTIONS)
    schedule.add_argument("target", nargs="?", help="the schedule file (create) or the schedule id")
    schedule.add_argument("--id", help="create: the schedule id (default: the file's 'scheduleId')")


def local_time(text: str, zone_name: str) -> str:
    """An ISO instant as the schedule's wall clock shows it, e.g. '2026-12-07 02:00:00 CET'."""
    moment = datetime.fromisoformat(text)
    with contextlib.suppress(ZoneInfoNotFoundError, ValueError):  # an unknown zone: keep the API's offset
        moment = moment.astimezone(ZoneInfo(zone_name))
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def describe(schedule: dict[str, Any]) -> list[str]:
    zone = str(schedule.get("timeZone") or "UTC")
    recurrence = schedule.get("schedule") or {}
    when = recurrence.get("cron") or f"every {recurrence.get('recurrenceInterval')}"
    counts = schedule.get("counts") or {}
    lines = [
        f"{schedule['scheduleId']}  {when}  ({zone})  {'suspended' if schedule.get('suspended') else 'active'}  "
        f"policy {schedule.get('concurrencyPolicy', 'Allow')}  catch-up {schedule.get('catchUp', 'skip')}",
        f"  runs: {counts.get('submitted', 0)} submitted, {counts.get('skipped', 0)} skipped, "
        f"{counts.get('missed', 0)} missed",
    ]
    if schedule.get("lastRun"):
        last = schedule["lastRun"]
        lines.append(f"  last run: {last.get('jobId')} for {local_time(last['scheduledFor'], zone)}")
    if schedule.get("lastSkip"):
        skip = schedule["lastSkip"]
        lines.append(f"  last skip: {local_time(skip['scheduledFor'], zone)}: {skip.get('reason')}")
    active = [job["jobId"] for job in schedule.get("activeJobs") or []]
    if active:
        lines.append(f"  running: {', '.join(active)}")
    runs = schedule.get("nextRuns") or []
    lines.append("  next runs:" if runs else "  next runs: none")
    lines += [f"    {local_time(run, zone)}" for run in runs]
    return lines


def read_schedule_file(path: str, schedule_id: str | None) -> tuple[str, dict[str, Any]]:
    try:
        body = json.loads(Path(path).read_text())
    except ValueError as error:
        raise ScheduleFileError(f"{path} is not a JSON schedule: {error}") from None
    if not isinstance(body, dict):
        raise ScheduleFileError(f"{path} must hold a JSON object")
    named = body.pop("scheduleId", None)
    chosen = schedule_id or named
    if not isinstance(chosen, str) or not chosen:
        raise ScheduleFileError(f"give the schedule id with --id or as 'scheduleId' in {path}")
    return chosen, body


def run(args: argparse.Namespace, client: BatchClient) -> int:
    if args.action == "list":
        out = client.schedules()
        if args.json:
            print(json.dumps(out))
            return 0
        for item in out["schedules"]:
            state = "suspended" if item["suspended"] else "active"
            recurrence = item.get("schedule") or {}
            when = recurrence.get("cron") or recurrence.get("recurrenceInterval")
            next_run = local_time(item["nextRun"], str(recurrence.get("timeZone") or "UTC")) if item["nextRun"] else "-"
            print(f"{item['scheduleId']}  {when}  {state}  next {next_run}")
        return 0
    if not args.target:
        raise ScheduleFileError(f"'schedule {args.action}' needs {'a file' if args.action == 'create' else 'an id'}")
    if args.action == "create":
        schedule_id, body = read_schedule_file(args.target, args.id)
        out = client.put_schedule(schedule_id, body)
    elif args.action == "show":
        out = client.schedule(args.target)
    elif args.action == "delete":
        out = client.delete_schedule(args.target)
        print(json.dumps(out) if args.json else f"deleted {args.target} (its jobs are kept)")
        return 0
    else:
        out = client.schedule_action(args.target, args.action)
    if args.json:
        print(json.dumps(out))
        return 0
    if args.action == "trigger":
        print(f"triggered {args.target}: job {out['jobId']} ({out['statusUrl']})")
    print("\n".join(describe(out)))
    return 0
