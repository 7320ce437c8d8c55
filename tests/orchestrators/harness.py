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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType

import orchestrators

START = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
# What the extension sends on Azure Storage (TimeSpan "c" format): timers past 6 days become sub-timer chains.
AZURE_STORAGE_TIMERS = {"maximumShortTimerDuration": "6.00:00:00", "longRunningTimerIntervalDuration": "3.00:00:00"}
OUT_OF_PROC_ERROR = "\n\n$OutOfProcData$:"
DUPLICATE_WARNING = "Potential duplicate Task completion for TaskId: "
COMPOUND = (ActionType.WHEN_ANY, ActionType.WHEN_ALL)
ENTITY_ACTIONS = (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY)
ACTIVITIES = (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY)
Handle = Any  # the SDK's orchestration handle: (context JSON) -> OrchestratorState JSON


@cache
def orchestrator_handles() -> dict[str, Handle]:
    """The SDK handles of the app's orchestrators by durable name, indexed the way the Functions worker does it:
    the blueprint registered on a DFApp whose `get_functions()` is called once (a second call raises).

    The module-level names (`orchestrators.job.job_orchestrator`, ...) are not the generators: the decorators
    turned each into an `azure.functions` FunctionBuilder. Its function's `get_user_function()` is the handle
    `Orchestrator.create` made, which is what the worker calls, and `handle.orchestrator_function` is the
    generator itself. Tests call the handle, so the SDK's own context parsing and replay loop run."""
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


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def flatten(actions: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Atomic actions depth-first, the order in which the SDK and the extension number them."""
    for action in actions:
        if ActionType(action["actionType"]) in COMPOUND:
            yield from flatten(action["compoundActions"])
        else:
            yield action


def entity_name(scheduler_id: str) -> str:
    """`@name@key` -> name (the extension splits at the second '@')."""
    return scheduler_id[1 : scheduler_id.index("@", 1)]


@dataclass(frozen=True)
class Scheduled:
    """One atomic action the orchestrator asked for, with the sequence number the host gave it (None for an
    external event wait, which the SDK keys by name)."""

    id: int | None
    type: ActionType
    action: dict[str, Any]
    request_id: str | None = None  # entity calls: the id the answer is raised under

    @property
    def name(self) -> str:
        """The function, event or entity name."""
        if self.type in ENTITY_ACTIONS:
            return entity_name(self.action["instanceId"])
        if self.type is ActionType.WAIT_FOR_EXTERNAL_EVENT:
            return str(self.action["externalEventName"])
        return str(self.action.get("functionName", ""))

    @property
    def operation(self) -> str | None:
        return self.action.get("operation")

    @property
    def input(self) -> Any:
        """The action's input, decoded (actions carry it as JSON text)."""
        text = self.action.get("input")
        return None if text is None else json.loads(text)

    @property
    def fire_at(self) -> datetime:
        return parse_iso(self.action["fireAt"])

    @property
    def key(self) -> tuple[Any, ...]:
        """What tests compare: the type and name (entity: and operation; timer: when it fires)."""
        if self.type in ENTITY_ACTIONS:
            return (self.type, self.name, self.operation)
        if self.type is ActionType.CREATE_TIMER:
            return (self.type, self.fire_at)
        return (self.type, self.name)


def activity(name: str) -> tuple[Any, ...]:
    return (ActionType.CALL_ACTIVITY, name)


def activity_with_retry(name: str) -> tuple[Any, ...]:
    return (ActionType.CALL_ACTIVITY_WITH_RETRY, name)


def sub_orchestration(name: str) -> tuple[Any, ...]:
    return (ActionType.CALL_SUB_ORCHESTRATOR, name)


def call_entity(name: str, operation: str) -> tuple[Any, ...]:
    return (ActionType.CALL_ENTITY, name, operation)


def signal_entity(name: str, operation: str) -> tuple[Any, ...]:
    return (ActionType.SIGNAL_ENTITY, name, operation)


def timer(fire_at: datetime) -> tuple[Any, ...]:
    return (ActionType.CREATE_TIMER, fire_at)


def continue_as_new() -> tuple[Any, ...]:
    return (ActionType.CONTINUE_AS_NEW, "")


def wait_for(event: str) -> tuple[Any, ...]:
    return (ActionType.WAIT_FOR_EXTERNAL_EVENT, event)


@dataclass
class Episode:
    """The SDK's answer to one episode (its OrchestratorState JSON) and the actions that were new in it."""

    state: dict[str, Any]
    new: list[Scheduled]
    deferred: list[str] = field(default_factory=list)  # event names the SDK kept for a later waiter

    @property
    def keys(self) -> list[tuple[Any, ...]]:
        return [scheduled.key for scheduled in self.new]

    @property
    def actions(self) -> list[dict[str, Any]]:
        """Every action of the execution so far, flattened (compound actions opened)."""
        return list(flatten(self.state["actions"][0])) if self.state.get("actions") else []

    @property
    def is_done(self) -> bool:
        return bool(self.state.get("isDone"))

    @property
    def output(self) -> Any:
        return self.state.get("output")

    @property
    def error(self) -> str | None:
        return self.state.get("error")

    @property
    def custom_status(self) -> Any:
        return self.state.get("customStatus")

    @property
    def finished(self) -> bool:
        """Completed, failed or continued as new: the extension ends this generation."""
        return self.is_done or self.error is not None

    @property
    def continued_with(self) -> Any:
        """The input the orchestration continued as new with (decoded), or None when it did not."""
        actions = self.actions
        if not actions or ActionType(actions[-1]["actionType"]) is not ActionType.CONTINUE_AS_NEW:
            return None
        text = actions[-1].get("input")
        return None if text is None else json.loads(text)


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
        self.history, self.pending, self.scheduled = [], [], []
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
            "history": [{**event, "IsPlayed": True} for event in self.history] + delivered,
            "input": self.input_text,
            "instanceId": self.instance_id,
            "isReplaying": False,
            "parentInstanceId": self.parent_instance_id,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
            **self.timers,
        }
        state, deferred = self._invoke(json.dumps(context))
        added = self._retry_bookkeeping(arrived)
        flat = list(flatten(state["actions"][0])) if state.get("actions") else []
        new: list[Scheduled] = []
        for action in flat[len(self.scheduled) :]:
            scheduled, events = self._schedule(action)
            self.scheduled.append(scheduled)
            new.append(scheduled)
            added += events
        self.history += [*delivered, *added, self._event(HistoryEventType.ORCHESTRATOR_COMPLETED)]
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
