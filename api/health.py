"""`GET /api/health`: liveness for load balancers and the local stack's readiness checks."""

import json

import azure.functions as func

from api import bp


@bp.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"status": "ok"}), status_code=200, mimetype="application/json")
