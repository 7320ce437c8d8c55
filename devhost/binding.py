"""The Durable client binding document: what the Functions host hands a function with a durable client input.

The host builds it for its own management URLs; workers pass it to user functions, whose SDK client then
calls the host's Durable HTTP API (`rpcBaseUrl`) from whichever process they run in. As the real host's, every
public URL carries the extension's system key (`code=`), so the URLs an app hands out work without more.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from urllib.parse import quote


def durable_client_binding(base: str, hub_name: str, rpc_base: str, system_key: str) -> str:
    webhook = f"{base}/runtime/webhooks/durabletask"
    code = f"code={quote(system_key, safe='')}"
    query = f"taskHub={hub_name}&connection=Storage&{code}"
    instance = f"{webhook}/instances/INSTANCEID"
    return json.dumps({
        "taskHubName": hub_name,
        "creationUrls": {
            "createNewInstancePostUri": f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]?{code}",
            "createAndWaitOnNewInstancePostUri": f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]"
            f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{code}",
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
        "requiredQueryStringParameters": code,
        "rpcBaseUrl": rpc_base,
        "httpBaseUrl": "",
    })  # fmt: skip


# The RPC address (which holds a secret) and the system key reach a language worker in its environment, under
# this name, and the worker removes them at once: not on its command line, which every local user can read,
# and not left for the processes user code starts.
WORKER_SETTING = "DEVHOST_WORKER_DURABLE"


def worker_setting(rpc_base: str, system_key: str) -> str:
    return json.dumps({"rpcBaseUrl": rpc_base, "systemKey": system_key})


def take_worker_setting(environ: MutableMapping[str, str]) -> tuple[str, str]:
    """(rpcBaseUrl, system key), removed from `environ`. Raises KeyError when the host did not set it."""
    data = json.loads(environ.pop(WORKER_SETTING))
    return str(data["rpcBaseUrl"]), str(data["systemKey"])
