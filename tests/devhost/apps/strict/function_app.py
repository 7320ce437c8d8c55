"""An app that breaks the real host's rules on purpose: devhost must treat each break as Azure does."""

import json
import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start/{orchestrator}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance = await client.start_new(req.route_params["orchestrator"], None, json.loads(body) if body else None)
    return func.HttpResponse(json.dumps({"id": instance}), status_code=202, mimetype="application/json")


@app.route(route="raise/{instance}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.raise_event(req.route_params["instance"], req.route_params["event"], None)
    return func.HttpResponse(status_code=202)


@app.route(route="status/{instance}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    found = await client.get_status(req.route_params["instance"], show_history=True, show_history_output=True)
    body = {
        "runtimeStatus": found.runtime_status.value if found.runtime_status else None,
        "output": found.output,
        "customStatus": found.custom_status,
        "history": getattr(found, "historyEvents", None) or found.history,
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.orchestration_trigger(context_name="context")
def sets_status(context: df.DurableOrchestrationContext):
    """Sets a custom status of the given number of characters, then calls an activity in the same episode."""
    size = context.get_input()["chars"]
    context.set_custom_status({"text": "x" * size})
    result = yield context.call_activity("marks", "after-status")
    return result


@app.activity_trigger(input_name="payload")
def marks(payload: str) -> str:
    return f"ran {payload}"


@app.orchestration_trigger(context_name="context")
def cancels_a_timer(context: df.DurableOrchestrationContext):
    """Races an event against a timer, cancels the timer when the event wins, then waits for a second event."""
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=2))
    go = context.wait_for_external_event("go")
    winner = yield context.task_any([go, timer])
    if winner is go:
        timer.cancel()
    yield context.wait_for_external_event("finish")
    return "finished"


@app.orchestration_trigger(context_name="context")
def races_a_kept_event(context: df.DurableOrchestrationContext):
    """The SDK hands an event that arrived before any waiter to every later waiter (durable-python#507); the
    .NET side hands it to one. The second race is won by that event in Python only, so in Azure the shim waits
    on it until the timer fires, unless the orchestrator cancels the timer."""
    cancel = bool(context.get_input()["cancel"])
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1))  # "E" arrives meanwhile
    yield context.wait_for_external_event("E")
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=4))
    second = context.wait_for_external_event("E")
    winner = yield context.task_any([second, timer])
    if cancel and winner is not timer:
        timer.cancel()
    return "event" if winner is second else "timer"


@app.orchestration_trigger(context_name="context")
def calls_slow_activity(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("sleeps", 4)
    except Exception as exc:
        return f"failed: {exc}"
    return "returned"


@app.activity_trigger(input_name="seconds")
def sleeps(seconds: int) -> int:
    time.sleep(seconds)
    return seconds


@app.orchestration_trigger(context_name="context")
def calls_big_activity(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("returns_big", 1_100_000)
    except Exception as exc:
        return f"failed: {exc}"
    return "returned"


@app.activity_trigger(input_name="size")
def returns_big(size: int) -> str:
    return "y" * size
