"""`GET /api/openapi.json`: the OpenAPI 3.1 document of this API, with the caller's origin as server."""

import azure.functions as func

from acibatch.openapi import openapi_document
from api import bp
from api.common import base_url, json_response


@bp.route(route="openapi.json", methods=["GET"])
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(openapi_document(base_url(req)))
