"""Orchestrators that continue as new around events, results and custom status (tests/devhost/test_continue_as_new).

Each one is driven through the Durable HTTP API; a generation is told apart by its input's `gen`.
"""

import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def first_event(context: df.DurableOrchestrationContext, names: list[str], seconds: float):
    """The name of the first of `names` raised within `seconds`, or "none"; the timer is cancelled when one wins."""
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    waiters = [context.wait_for_external_event(name) for name in names]
    winner = yield context.task_any([*waiters, timer])
    if winner is timer:
        return "none"
    timer.cancel()
    return names[waiters.index(winner)]


@app.orchestration_trigger(context_name="context")
def carries_events(context: df.DurableOrchestrationContext):
    """Generation 0 waits for "go" and continues as new; generation 1 reports which event it was handed."""
    if context.get_input()["gen"] == 0:
        yield context.wait_for_external_event("go")
        context.continue_as_new({"gen": 1})
        return None
    got = yield from first_event(context, ["before", "after"], 3)
    return got


@app.orchestration_trigger(context_name="context")
def slow_switch(context: df.DurableOrchestrationContext):
    """Generation 0's last episode takes a while (events can arrive meanwhile); generation 1 waits for two events."""
    if context.get_input()["gen"] == 0:
        yield context.wait_for_external_event("go")
        if not context.is_replaying:
            time.sleep(1.5)  # the episode is in flight: what is raised now arrives before it commits
        context.continue_as_new({"gen": 1})
        return None
    during = yield from first_event(context, ["during"], 5)
    later = yield from first_event(context, ["later"], 10)
    return [during, later]


@app.orchestration_trigger(context_name="context")
def leaves_work_behind(context: df.DurableOrchestrationContext):
    """Generation 0 starts an activity (id 0), a timer (id 1) and a sub-orchestration (id 2), then continues as new
    on "go" without waiting for them; generation 1 starts the same three with the same ids and waits for all."""
    gen = context.get_input()["gen"]
    started = context.current_utc_datetime
    work = context.call_activity("echo_after", {"value": f"activity {gen}", "seconds": 1 if gen == 0 else 2})
    timer = context.create_timer(started + timedelta(seconds=1.5 if gen == 0 else 3))
    child = context.call_sub_orchestrator("echo_child", {"value": f"child {gen}", "seconds": 1 if gen == 0 else 2})
    if gen == 0:
        yield context.task_any([work, timer, child, context.wait_for_external_event("go")])
        context.continue_as_new({"gen": 1})
        return None
    yield context.task_all([work, timer, child])
    elapsed = (context.current_utc_datetime - started).total_seconds()
    return {"activity": work.result, "child": child.result, "elapsed": elapsed}


@app.orchestration_trigger(context_name="context")
def echo_child(context: df.DurableOrchestrationContext):
    order = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=order["seconds"]))
    return order["value"]


@app.activity_trigger(input_name="order")
def echo_after(order: dict) -> str:
    time.sleep(order["seconds"])
    return str(order["value"])


@app.orchestration_trigger(context_name="context")
def keeps_status(context: df.DurableOrchestrationContext):
    """Generation 0 sets a custom status; generation 1 sets none until it was raised "set"."""
    if context.get_input()["gen"] == 0:
        context.set_custom_status("from gen 0")
        yield context.wait_for_external_event("go")
        context.continue_as_new({"gen": 1})
        return None
    yield context.wait_for_external_event("next")
    yield context.wait_for_external_event("set")
    context.set_custom_status("from gen 1")
    yield context.wait_for_external_event("end")
    return "done"


@app.orchestration_trigger(context_name="context")
def calls_counter(context: df.DurableOrchestrationContext):
    """Calls `counter` as a sub-orchestration that continues as new until it has counted to 3."""
    child_id = f"{context.instance_id}-counter"
    result = yield context.call_sub_orchestrator("counter", {"n": 0, "upto": 3, "seen": []}, child_id)
    return result


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    state = context.get_input()
    state["seen"].append(context.instance_id)  # every generation runs under the same instance id
    yield context.call_activity("echo_after", {"value": state["n"], "seconds": 0})
    if state["n"] < state["upto"]:
        context.continue_as_new({**state, "n": state["n"] + 1})
        return None
    return state
