"""Run the app's orchestrator functions in-process through the real Durable Python SDK, episode by episode.

An `Orchestration` plays the part of the Durable extension and DTFx for one instance: it builds the history
the way they store it, hands the whole history to the SDK's own orchestration handle on every episode (the
callable the Functions worker invokes, so `DurableOrchestrationContext.from_json`, `Orchestrator` and the
`TaskOrchestrationExecutor` replay loop all run for real), and turns the new actions the SDK returns into
the events the extension would append (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated,
EventSent), giving them the sequence numbers DTFx would give. Tests then say what happened next, in the
order it happened, and play the next episode:

    h = Orchestration(names.JOB_ORCHESTRATOR, job.to_dict(), job.instance_id)
    h.run()                                            # [call jobprogress.init]
    h.entity_answered("jobprogress", "init", None)
    h.event(names.EVENT_CANCEL, {"requestedAt": "..."})
    episode = h.run()
    assert episode.keys == [call_entity("jobprogress", "cancel")]

The calls and keys tests compare (`Scheduled`, `Episode`, `activity(...)`, `call_entity(...)`, ...) are in
actions.py; driver.py answers calls from a table for tests that need to get far cheaply.

What the real system does, and where it is written (upstream repositories, read at the commits noted in
the report):
- Context JSON: `OrchestrationTriggerAttributeBindingProvider.OrchestrationContextToString` (durable
  extension) sends upperSchemaVersion V2 + upperSchemaVersionNew V3 and, on Azure Storage, timers of at most
  6 days with 3-day intervals (`AzureStorageDurabilityProvider`); both are sent here, so a longer timer is the
  SDK's chain of sub-timers, as in Azure.
- Sequence numbers: every new atomic action but WaitForExternalEvent takes the next number in the SDK's
  depth-first order; a cancelled timer is still created (`OutOfProcOrchestrationShim.InvokeAPIFromAction`
  creates it, then cancels its token) and keeps its number.
- Retries (`CallActivityWithRetry`): DTFx's `RetryInterceptor` creates a timer after each failure (FireAt
  now for the last one) and schedules the next attempt when it fires, each with a new number.
- Entity calls: EventSent whose Input carries the request id; the answer is an EventRaised named by that id
  whose Input is `{"result": <json>}`, plus `exceptionType` on failure (`TaskEntityShim`).
- Events raised through the Python client arrive JSON-encoded twice (Azure/azure-functions-durable-python#295).
"""

from __future__ import annotations

import json
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType

import orchestrators
from devhost import fastpaths
from tests.orchestrators.actions import ACTIVITIES, ENTITY_ACTIONS, Episode, Scheduled, flatten, iso

START = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
# What the extension sends on Azure Storage (TimeSpan "c" format): timers past 6 days become sub-timer chains.
AZURE_STORAGE_TIMERS = {"maximumShortTimerDuration": "6.00:00:00", "longRunningTimerIntervalDuration": "3.00:00:00"}
OUT_OF_PROC_ERROR = "\n\n$OutOfProcData$:"
DUPLICATE_WARNING = "Potential duplicate Task completion for TaskId: "
Handle = Any  # the SDK's orchestration handle: (context JSON) -> OrchestratorState JSON


@cache
def orchestrator_handles() -> dict[str, Handle]:
    """The SDK handles of the app's orchestrators by durable name, indexed the way the Functions worker does it:
    the blueprint registered on a DFApp whose `get_functions()` is called once (a second call raises).

    The module-level names (`orchestrators.job.job_orchestrator`, ...) are not the generators: the decorators
    turned each into an `azure.functions` FunctionBuilder. Its function's `get_user_function()` is the handle
    `Orchestrator.create` made, which is what the worker calls, and `handle.orchestrator_function` is the
    generator itself. Tests call the handle, so the SDK's own context parsing and replay loop run."""
    # Every episode hands the SDK the whole history again; devhost's drop-in replacements for the SDK's fixed
    # per-episode costs (timestamp parsing, a namedtuple class per episode, the context's JSON) return what the
    # SDK's own code would, so the tests stay faithful and the replay loop costs a fraction.
    fastpaths.install({})
    app = df.DFApp()
    app.register_functions(orchestrators.bp)
    handles: dict[str, Handle] = {}
    for function in app.get_functions():
        trigger = function.get_trigger()
        if trigger.type == "orchestrationTrigger":
            # The extension registers `orchestration` when set, else the function name (case-insensitively).
            handles[getattr(trigger, "orchestration", None) or function.get_function_name()] = (
                function.get_user_function()
            )
    return handles


@dataclass
class _Retry:
    """DTFx's retry bookkeeping for one `*WithRetry` action."""

    scheduled: Scheduled
    attempts: int = 1
    waiting_timer: int | None = None


class Orchestration:
    """One orchestration instance: a history told like a story, replayed through the real SDK per episode."""

    def __init__(
        self,
        name: str,
        input_value: Any,
        instance_id: str,
        *,
        start: datetime = START,
        timers: dict[str, str] | None = None,
        parent_instance_id: str | None = None,
    ) -> None:
        self.handle = orchestrator_handles()[name]
        self.name = name
        self.instance_id = instance_id
        self.execution_id = uuid.uuid5(uuid.NAMESPACE_URL, f"execution:{instance_id}").hex
        self.input_text = json.dumps(input_value)  # the host passes the input as JSON text
        self.parent_instance_id = parent_instance_id
        self.timers = AZURE_STORAGE_TIMERS if timers is None else timers
        self.now = start
        self.history: list[dict[str, Any]] = []  # committed events (IsPlayed once sent again)
        self.played_json: list[str] = []  # each committed event as sent again, encoded once (not every episode)
        self.pending: list[dict[str, Any]] = []  # events that arrived since the last episode
        self.next_id = 0
        self.scheduled: list[Scheduled] = []  # every atomic action, in action-list order
        self.open: dict[int, Scheduled] = {}  # numbered tasks not completed yet
        self.retries: dict[int, _Retry] = {}  # by the current attempt's number
        self.last: Episode | None = None

    # -- what happened next (queued for the next episode) ----------------------------------------------

    def _event(self, event_type: HistoryEventType, event_id: int = -1, **fields: Any) -> dict[str, Any]:
        return {"EventType": event_type, "EventId": event_id, "IsPlayed": False, "Timestamp": iso(self.now), **fields}

    def _take(self, wanted: Scheduled | str, types: tuple[ActionType, ...], operation: str | None = None) -> Scheduled:
        """The open task meant: the one given, or the oldest open one of that name (and operation)."""
        if isinstance(wanted, Scheduled):
            if wanted.id not in self.open:
                raise AssertionError(f"{wanted.key} is not an open task of {self.instance_id}")
            return self.open.pop(wanted.id)
        for number, scheduled in self.open.items():
            if scheduled.type in types and scheduled.name == wanted and operation in (None, scheduled.operation):
                return self.open.pop(number)
        raise AssertionError(f"{self.instance_id} has no open {wanted} {operation or ''}: {self.open_keys()}")

    def open_keys(self) -> list[tuple[Any, ...]]:
        return [scheduled.key for scheduled in self.open.values()]

    def activity_completed(self, wanted: Scheduled | str, result: Any) -> None:
        task = self._take(wanted, ACTIVITIES)
        self.retries.pop(task.id or -1, None)
        self.pending.append(
            self._event(HistoryEventType.TASK_COMPLETED, TaskScheduledId=task.id, Result=json.dumps(result))
        )

    def activity_failed(self, wanted: Scheduled | str, message: str) -> None:
        task = self._take(wanted, ACTIVITIES)
        # The extension's wording; the SDK raises `Exception(f"{Reason} \n {Details}")` into the orchestrator.
        reason = f"Activity function '{task.name}' failed: {message}"
        details = json.dumps({"$type": "System.Exception", "Message": message})
        self.pending.append(
            self._event(HistoryEventType.TASK_FAILED, TaskScheduledId=task.id, Reason=reason, Details=details)
        )

    def sub_orchestration_completed(self, wanted: Scheduled | str, output: Any) -> None:
        task = self._take(wanted, (ActionType.CALL_SUB_ORCHESTRATOR,))
        self.pending.append(
            self._event(
                HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
                TaskScheduledId=task.id,
                Result=json.dumps(output),
            )
        )

    def sub_orchestration_failed(self, wanted: Scheduled | str, message: str) -> None:
        task = self._take(wanted, (ActionType.CALL_SUB_ORCHESTRATOR,))
        reason = f"Orchestrator function '{task.name}' failed: {message}"
        self.pending.append(
            self._event(
                HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED, TaskScheduledId=task.id, Reason=reason, Details=""
            )
        )

    def entity_answered(
        self, wanted: Scheduled | str, operation: str | None, result: Any, *, error: bool = False
    ) -> None:
        """The entity's answer to a call: an EventRaised named by the call's request id."""
        task = self._take(wanted, (ActionType.CALL_ENTITY,), operation)
        message: dict[str, Any] = {"result": json.dumps(result)}
        if error:
            message["exceptionType"] = "Error"
        self.pending.append(self._event(HistoryEventType.EVENT_RAISED, Name=task.request_id, Input=json.dumps(message)))

    def timer_fired(self, wanted: Scheduled | None = None) -> Scheduled:
        """A timer fires (by default the open, uncancelled one due first); the clock moves to its time."""
        if wanted is None:
            live = [s for s in self.open.values() if s.type is ActionType.CREATE_TIMER and not self.cancelled(s)]
            if not live:
                raise AssertionError(f"{self.instance_id} has no open timer: {self.open_keys()}")
            wanted = min(live, key=lambda s: (s.fire_at, s.id or 0))
        task = self._take(wanted, (ActionType.CREATE_TIMER,))
        self.now = max(self.now, task.fire_at)
        self.pending.append(self._event(HistoryEventType.TIMER_FIRED, TimerId=task.id, FireAt=task.action["fireAt"]))
        return task

    def event(self, name: str, data: Any, *, through_python_client: bool = True) -> None:
        """An external event. Raised with the Python client (`raise_event`), its data arrives JSON-encoded
        twice (#295); raised by posting JSON to the HTTP API, once."""
        text = json.dumps(json.dumps(data)) if through_python_client else json.dumps(data)
        self.pending.append(self._event(HistoryEventType.EVENT_RAISED, Name=name, Input=text))

    def wait(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def cancelled(self, scheduled: Scheduled) -> bool:
        """Whether the SDK marked this timer cancelled in its latest action list."""
        if self.last is None or scheduled.type is not ActionType.CREATE_TIMER:
            return False
        actions = self.last.actions
        if scheduled not in self.scheduled:
            return False  # a retry's timer: the host's, not an action
        return bool(actions[self.scheduled.index(scheduled)].get("isCanceled"))

    def next_generation(self) -> None:
        """After a continue-as-new: a new execution of the same instance, its input the one continued with and
        its history empty (DTFx's ExecutionStarted of the next generation). Events raised later go to it."""
        if self.last is None or self.last.continued_with is None:
            raise AssertionError(f"{self.instance_id} did not continue as new")
        self.input_text = json.dumps(self.last.continued_with)
        self.execution_id = uuid.uuid5(uuid.NAMESPACE_URL, f"execution:{self.instance_id}:{self.execution_id}").hex
        self.history, self.played_json, self.pending, self.scheduled = [], [], [], []
        self.open, self.retries, self.last, self.next_id = {}, {}, None, 0

    # -- playing an episode ----------------------------------------------------------------------------------

    def run(self) -> Episode:
        """One episode: the whole history plus what happened since, through the SDK's handle; the new actions
        are scheduled the way the extension schedules them."""
        if self.last is not None and self.last.finished:
            raise AssertionError(f"{self.instance_id} has finished; the host starts no more episodes")
        delivered = [self._event(HistoryEventType.ORCHESTRATOR_STARTED)]
        if not self.history:
            delivered.append(
                self._event(
                    HistoryEventType.EXECUTION_STARTED,
                    Name=self.name,
                    Version="",
                    Input=self.input_text,
                    OrchestrationInstance={"InstanceId": self.instance_id, "ExecutionId": self.execution_id},
                    ParentInstance=None,
                )
            )
        arrived, self.pending = self.pending, []
        if len(arrived) > 1 and any(self._retry_for(event) for event in arrived):
            # With several events in one episode the SDK's numbering of retries depends on their order.
            raise AssertionError("deliver a retried activity's failure or retry timer alone in its episode")
        delivered += arrived
        context = {
            "input": self.input_text,
            "instanceId": self.instance_id,
            "isReplaying": False,
            "parentInstanceId": self.parent_instance_id,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
            **self.timers,
        }
        history = ",".join([*self.played_json, *(json.dumps(event) for event in delivered)])
        state, deferred = self._invoke(f'{{"history":[{history}],{json.dumps(context)[1:]}')
        added = self._retry_bookkeeping(arrived)
        flat = list(flatten(state["actions"][0])) if state.get("actions") else []
        new: list[Scheduled] = []
        for action in flat[len(self.scheduled) :]:
            scheduled, events = self._schedule(action)
            self.scheduled.append(scheduled)
            new.append(scheduled)
            added += events
        committed = [*delivered, *added, self._event(HistoryEventType.ORCHESTRATOR_COMPLETED)]
        self.history += committed
        self.played_json += [json.dumps({**event, "IsPlayed": True}) for event in committed]
        self.last = Episode(state=state, new=new, deferred=deferred)
        self.now += timedelta(seconds=1)
        return self.last

    def _invoke(self, body: str) -> tuple[dict[str, Any], list[str]]:
        """The SDK handle's answer: its state, or on failure the state it attaches to the exception it raises
        (the extension then fails the instance with `error`). Also the keys the SDK deferred."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                state: dict[str, Any] = json.loads(self.handle(body))
            except Exception as exc:
                text = str(exc)
                if OUT_OF_PROC_ERROR not in text:
                    raise
                state = json.loads(text.split(OUT_OF_PROC_ERROR, 1)[1])
        deferred = []
        for warning in caught:
            message = str(warning.message)
            if message.startswith(DUPLICATE_WARNING):
                deferred.append(message.removeprefix(DUPLICATE_WARNING))
            elif "df_loads was called without expected_type" not in message:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        numbered = {str(number) for number in range(self.next_id)}
        requests = {s.request_id for s in self.scheduled if s.request_id}
        # A completion the SDK could not match to a numbered task means the numbering here is wrong: in Azure
        # the orchestration would hang. Only external events may wait for a later waiter.
        lost = [key for key in deferred if key in numbered or key in requests]
        if lost:
            raise AssertionError(f"the SDK matched no task to completions {lost}: sequence numbers disagree")
        return state, deferred

    def _number(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _schedule(self, action: dict[str, Any]) -> tuple[Scheduled, list[dict[str, Any]]]:
        """The events the extension appends for one new action, and the action with its number."""
        kind = ActionType(action["actionType"])
        if kind is ActionType.WAIT_FOR_EXTERNAL_EVENT:
            return Scheduled(None, kind, action), []
        number = self._number()
        if kind in ENTITY_ACTIONS:
            request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.instance_id}:{self.execution_id}:{number}"))
            scheduled = Scheduled(number, kind, action, request_id)
            message: dict[str, Any] = {
                "op": action["operation"],
                "input": json.dumps(action.get("input")),
                "id": request_id,
                "parent": self.instance_id,
                "parentExecution": self.execution_id,
            }
            if kind is ActionType.SIGNAL_ENTITY:
                message["signal"] = True
            else:
                self.open[number] = scheduled
            event = self._event(
                HistoryEventType.EVENT_SENT,
                number,
                InstanceId=action["instanceId"],
                Name="op",
                Input=json.dumps(message),
            )
            return scheduled, [event]
        scheduled = Scheduled(number, kind, action)
        if kind in ACTIVITIES:
            self.open[number] = scheduled
            if kind is ActionType.CALL_ACTIVITY_WITH_RETRY:
                self.retries[number] = _Retry(scheduled)
            fields = {"Name": action["functionName"], "Version": "", "Input": action.get("input")}
            return scheduled, [self._event(HistoryEventType.TASK_SCHEDULED, number, **fields)]
        if kind is ActionType.CALL_SUB_ORCHESTRATOR:
            self.open[number] = scheduled
            child = action.get("instanceId") or f"{self.execution_id}:{number}"  # DTFx's default child id
            fields = {"Name": action["functionName"], "Version": "", "InstanceId": child, "Input": action.get("input")}
            return scheduled, [self._event(HistoryEventType.SUB_ORCHESTRATION_INSTANCE_CREATED, number, **fields)]
        if kind is ActionType.CREATE_TIMER:
            # Created even when already cancelled: the extension creates the timer, then cancels its token.
            self.open[number] = scheduled
            return scheduled, [self._event(HistoryEventType.TIMER_CREATED, number, FireAt=action["fireAt"])]
        if kind is ActionType.CONTINUE_AS_NEW:
            return scheduled, []  # the host ends this generation (`Orchestration.next_generation`)
        raise AssertionError(f"the harness does not schedule {kind.name} actions")

    def _retry_bookkeeping(self, arrived: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """DTFx's RetryInterceptor for `*WithRetry` activities: a timer after each failed attempt (due now after
        the last one), then the next attempt when it fires. Its numbers come before the episode's new actions."""
        added: list[dict[str, Any]] = []
        for event in arrived:
            retry = self._retry_for(event)
            if retry is None:
                continue
            options = retry.scheduled.action["retryOptions"]
            if event["EventType"] == HistoryEventType.TASK_FAILED:
                last = retry.attempts >= options["maxNumberOfAttempts"]
                delay = timedelta(milliseconds=0 if last else options["firstRetryIntervalInMilliseconds"])
                number = self._number()
                retry.waiting_timer = number
                self.open[number] = Scheduled(number, ActionType.CREATE_TIMER, {"fireAt": iso(self.now + delay)})
                added.append(self._event(HistoryEventType.TIMER_CREATED, number, FireAt=iso(self.now + delay)))
                continue
            retry.waiting_timer = None
            if retry.attempts >= options["maxNumberOfAttempts"]:
                continue  # the SDK now raises the last failure into the orchestrator
            retry.attempts += 1
            number = self._number()
            again = Scheduled(number, retry.scheduled.type, retry.scheduled.action)
            self.open[number] = again
            self.retries[number] = retry
            fields = {"Name": again.name, "Version": "", "Input": again.action.get("input")}
            added.append(self._event(HistoryEventType.TASK_SCHEDULED, number, **fields))
        return added

    def _retry_for(self, event: dict[str, Any]) -> _Retry | None:
        if event["EventType"] == HistoryEventType.TASK_FAILED:
            return self.retries.get(event["TaskScheduledId"])
        if event["EventType"] == HistoryEventType.TIMER_FIRED:
            return next((r for r in self.retries.values() if r.waiting_timer == event["TimerId"]), None)
        return None
