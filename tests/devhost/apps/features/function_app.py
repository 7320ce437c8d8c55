"""A sample v2 Durable Functions app exercising every devhost feature the tests check."""

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
MARKS = Path(os.environ.get("FEATURES_MARK_DIR", "/tmp"))


# ---- plain HTTP -----------------------------------------------------------------------------------------------


@app.route(route="echo/{name}/{rest?}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    body = {
        "method": req.method,
        "name": req.route_params.get("name"),
        "rest": req.route_params.get("rest"),
        "params": dict(req.params),
        "header": req.headers.get("x-probe"),
        "body": req.get_body().decode(),
        "url": req.url,
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="items/{id:int}", methods=["GET"])
async def item(req: func.HttpRequest) -> str:
    await asyncio.sleep(0)
    return f"item {int(req.route_params['id']) * 2}"


@app.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path") or "", status_code=203)


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("intended failure")


# ---- durable client over HTTP ---------------------------------------------------------------------------------


@app.route(route="start/{orchestrator}/{instance?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance = await client.start_new(
        req.route_params["orchestrator"], req.route_params.get("instance"), json.loads(body) if body else None
    )
    return client.create_check_status_response(req, instance)


@app.route(route="raise/{instance}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.raise_event(req.route_params["instance"], req.route_params["event"], json.loads(req.get_body()))
    return func.HttpResponse(status_code=202)


@app.route(route="status/{instance}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    found = await client.get_status(req.route_params["instance"], show_history=True)
    if not found:
        return func.HttpResponse(status_code=404)
    return func.HttpResponse(json.dumps(found.to_json(), default=str), mimetype="application/json")


@app.route(route="manage/{action}/{instance}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def manage(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    action, instance = req.route_params["action"], req.route_params["instance"]
    if action == "terminate":
        await client.terminate(instance, "stop it")
    elif action == "suspend":
        await client.suspend(instance, "pause")
    elif action == "resume":
        await client.resume(instance, "go")
    elif action == "purge":
        result = await client.purge_instance_history(instance)
        return func.HttpResponse(json.dumps({"deleted": result.instances_deleted}))
    elif action == "restart":
        restarted = await client.restart(instance, restart_with_new_instance_id=True)
        return func.HttpResponse(json.dumps({"new": restarted}))
    elif action == "list":
        running = await client.get_status_by(runtime_status=[df.OrchestrationRuntimeStatus.Running])
        return func.HttpResponse(json.dumps({"running": [s.instance_id for s in running]}))
    return func.HttpResponse(status_code=202)


@app.route(route="entity/{name}/{key}/{op}", methods=["POST", "GET"])
@app.durable_client_input(client_name="client")
async def entity_client(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    entity = df.EntityId(req.route_params["name"], req.route_params["key"])
    if req.method == "POST":
        await client.signal_entity(entity, req.route_params["op"], json.loads(req.get_body() or b"null"))
        return func.HttpResponse(status_code=202)
    state = await client.read_entity_state(entity)
    return func.HttpResponse(json.dumps({"exists": state.entity_exists, "state": state.entity_state}))


# ---- orchestrations -------------------------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def sequence(context: df.DurableOrchestrationContext):
    cities = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for city in cities:
        results.append((yield context.call_activity("say_hello", city)))
    results.append((yield context.call_activity("async_hello", "async")))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input()
    values = yield context.task_all([context.call_activity("square", i) for i in range(count)])
    return sum(values)


@app.orchestration_trigger(context_name="context")
def gathers(context: df.DurableOrchestrationContext):
    """A fan-in whose children finish 100 ms apart, plus entity calls and an activity in one task_all."""
    count = context.get_input()
    children = [context.call_sub_orchestrator("paced_child", i) for i in range(count)]
    squares = yield context.task_all(children)
    mixed = yield context.task_all([
        context.call_entity(df.EntityId("counter", f"{context.instance_id}-a"), "add", 1),
        context.call_entity(df.EntityId("counter", f"{context.instance_id}-b"), "add", 2),
        context.call_activity("square", 3),
    ])  # fmt: skip
    return {"squares": squares, "mixed": mixed}


@app.orchestration_trigger(context_name="context")
def paced_child(context: df.DurableOrchestrationContext):
    value = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=100 * value))
    return (yield context.call_activity("square", value))


@app.orchestration_trigger(context_name="context")
def gather_then_member(context: df.DurableOrchestrationContext):
    """Catches a task_all's failure, then waits on a member that is still running: it must still finish."""
    failing = context.call_activity("flaky", {"key": context.instance_id, "fail": 1})
    slow = context.call_sub_orchestrator("paced_child", 5)
    try:
        yield context.task_all([failing, slow])
    except Exception:
        return {"after_failure": (yield slow)}
    return {"after_failure": None}


@app.orchestration_trigger(context_name="context")
def child_then_wait(context: df.DurableOrchestrationContext):
    """Two children in a task_all: the fast one's result is held while the other waits for an event."""
    fast = context.call_sub_orchestrator("child", 4, f"{context.instance_id}:child")
    slow = context.call_sub_orchestrator("waits_for_go", None, f"{context.instance_id}:slow")
    return (yield context.task_all([fast, slow]))


@app.orchestration_trigger(context_name="context")
def beyond_orjson(context: df.DurableOrchestrationContext):
    yield context.call_activity("square", 2)
    context.set_custom_status({"big": -(2**65)})
    return {"big": 2**70, "nan": float("nan")}


@app.orchestration_trigger(context_name="context")
def not_a_number(context: df.DurableOrchestrationContext):
    """Values `json` writes (NaN, Infinity) but orjson would store as null, with nothing orjson refuses."""
    yield context.call_activity("square", 2)
    context.set_custom_status({"low": float("-inf")})
    return {"nan": float("nan"), "high": float("inf")}


@app.orchestration_trigger(context_name="context")
def waits_for_go(context: df.DurableOrchestrationContext):
    return (yield context.wait_for_external_event("Go"))


@app.orchestration_trigger(context_name="context")
def survives_worker_loss(context: df.DurableOrchestrationContext):
    """An activity that kills its language worker fails; the next one runs on the replacement worker."""
    try:
        yield context.call_activity("kills_its_worker", None)
        caught = None
    except Exception as error:
        caught = str(error)
    return {"caught": caught, "after": (yield context.call_activity("square", 5))}


@app.orchestration_trigger(context_name="context")
def counts_its_runs(context: df.DurableOrchestrationContext):
    """Notes every time a worker runs it from the start: each replay with sessions off, once with them on."""
    with open(MARKS / f"runs-{context.instance_id}.log", "a") as log:
        log.write("run\n")
    total = 0
    for value in range(1, 4):
        total += yield context.call_activity("square", value)
    return total


@app.orchestration_trigger(context_name="context")
def crashes_every_replay(context: df.DurableOrchestrationContext):
    os._exit(3)
    yield context.call_activity("square", 1)


@app.orchestration_trigger(context_name="context")
def retries(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=3)
    first = yield context.call_activity_with_retry("flaky", options, {"key": context.instance_id, "fail": 2})
    try:
        yield context.call_activity_with_retry("flaky", options, {"key": context.instance_id + "x", "fail": 5})
    except Exception as error:
        second = f"gave up: {'always failing' in str(error)}"
    child = yield context.call_sub_orchestrator_with_retry("child", options, 7, context.instance_id + ":child")
    return [first, second, child]


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    value = context.get_input()
    doubled = yield context.call_activity("square", value)
    return {"child_of": context.parent_instance_id, "value": doubled}


@app.orchestration_trigger(context_name="context")
def waits(context: df.DurableOrchestrationContext):
    context.set_custom_status({"phase": "waiting"})
    early = yield context.wait_for_external_event("Early")
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    approval = context.wait_for_external_event("Approval")
    winner = yield context.task_any([approval, timer])
    if winner is approval:
        timer.cancel()
    short = context.create_timer(context.current_utc_datetime + timedelta(milliseconds=300))
    yield short
    context.set_custom_status({"phase": "done"})
    return {"early": early, "approval": approval.result if winner is approval else None, "uuid": context.new_uuid()}


@app.orchestration_trigger(context_name="context")
def counter_loop(context: df.DurableOrchestrationContext):
    value = context.get_input() or 0
    if value < 3:
        yield context.call_activity("square", value)
        context.continue_as_new(value + 1)
        return None
    return f"finished at {value}"


@app.orchestration_trigger(context_name="context")
def uses_entity(context: df.DurableOrchestrationContext):
    entity = df.EntityId("counter", context.get_input())
    context.signal_entity(entity, "add", 5)
    after_add = yield context.call_entity(entity, "add", 10)
    try:
        yield context.call_entity(entity, "explode")
    except Exception as error:
        caught = str(error)
    state = yield context.call_entity(entity, "get")
    return {"after_add": after_add, "caught": caught, "state": state}


@app.orchestration_trigger(context_name="context")
def fails(context: df.DurableOrchestrationContext):
    yield context.call_activity("say_hello", "x")
    raise ValueError("orchestrator gave up")


@app.orchestration_trigger(context_name="context")
def slow_steps(context: df.DurableOrchestrationContext):
    done = []
    for step in range(context.get_input()):
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=0.5))
        done.append((yield context.call_activity("record", step)))
    return done


@app.orchestration_trigger(context_name="context")
def calls_missing(context: df.DurableOrchestrationContext):
    yield context.call_activity("no_such_activity", 1)


# ---- activities and entities ----------------------------------------------------------------------------------


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.activity_trigger(input_name="name")
async def async_hello(name: str) -> str:
    await asyncio.sleep(0.01)
    return f"Hello {name}!"


@app.activity_trigger(input_name="value")
def square(value: int) -> int:
    return value * value


@app.activity_trigger(input_name="payload")
def flaky(payload: dict) -> str:
    marker = MARKS / f"flaky-{payload['key']}"
    attempts = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempts))
    if attempts <= payload["fail"]:
        raise RuntimeError(f"always failing (attempt {attempts})")
    return f"ok after {attempts}"


@app.activity_trigger(input_name="payload")
def kills_its_worker(payload: None) -> None:
    os._exit(3)


@app.activity_trigger(input_name="step")
def record(step: int) -> int:
    with open(MARKS / "record.log", "a") as log:
        log.write(f"{step}\n")
    return step


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += context.get_input()
    elif operation == "explode":
        raise ValueError("entity operation failed")
    elif operation == "delete":
        context.destruct_on_exit()
        return
    context.set_state(value)
    context.set_result(value)


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", run_on_startup=True)
def tick(timer: func.TimerRequest) -> None:
    with open(MARKS / "ticks.log", "a") as log:
        log.write("tick\n")
