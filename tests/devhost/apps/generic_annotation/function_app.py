"""An app Azure's Python worker refuses as a whole: one activity annotates its input with a PEP 585 generic.

The HTTP function and the orchestrator are fine; the worker still reports 0 functions, because it stops at the
first function it cannot index (Azure/azure-functions-durable-python#468).
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="status", methods=["GET"])
def status_page(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


@app.orchestration_trigger(context_name="context")
def merge_twice(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("merge_settings", {"a": 1})
    return first


@app.activity_trigger(input_name="payload")
def merge_settings(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "merged": True}
