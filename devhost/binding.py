"""The Durable client binding document: what the Functions host hands a function with a durable client input.

The host builds it for its own management URLs; workers pass it to user functions, whose SDK client then
calls the host's Durable HTTP API (`rpcBaseUrl`) from whichever process they run in.
"""

from __future__ import annotations

import json


def durable_client_binding(base: str, hub_name: str) -> str:
    webhook = f"{base}/runtime/webhooks/durabletask"
    query = f"taskHub={hub_name}&connection=Storage"
    instance = f"{webhook}/instances/INSTANCEID"
    return json.dumps({
        "taskHubName": hub_name,
        "creationUrls": {
            "createNewInstancePostUri": f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]",
            "createAndWaitOnNewInstancePostUri": f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]"
            "?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}",
        },
        "managementUrls": {
            "id": "INSTANCEID",
            "statusQueryGetUri": f"{instance}?{query}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{instance}?{query}",
            "restartPostUri": f"{instance}/restart?{query}",
            "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
        },
        "baseUrl": webhook,
        "requiredQueryStringParameters": "",
        "rpcBaseUrl": f"{base}/durabletask/",
        "httpBaseUrl": "",
    })  # fmt: skip
