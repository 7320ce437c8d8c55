#!/bin/sh
# azd postprovision hook: build and push the acibatch task agent image (agent/) into the deployment's registry, so a
# task that moves files or keeps whole logs can start right after `azd up` (the app adds the agent to every task with
# a command once storage is configured, and ACI cannot start a group whose image is missing).
#
# azd runs it with the environment's values: ACIBATCH_AGENT_IMAGE and ACIBATCH_REGISTRY_SERVER (outputs of
# infra/main.bicep) and AZURE_SUBSCRIPTION_ID. `az acr build` runs the build in the registry (ACR Tasks): no local
# Docker is needed, only the Azure CLI signed in to the same tenant (`az login`).
# Set ACIBATCH_BUILD_AGENT_IMAGE=false to skip it (then build the image yourself; docs/deploy.md).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
image=${ACIBATCH_AGENT_IMAGE:-}
server=${ACIBATCH_REGISTRY_SERVER:-}

case "${ACIBATCH_BUILD_AGENT_IMAGE:-true}" in
false | 0 | no)
    echo "agent image: not built (ACIBATCH_BUILD_AGENT_IMAGE=${ACIBATCH_BUILD_AGENT_IMAGE}); make sure ${image:-the agent image} exists"
    exit 0
    ;;
esac

if [ -z "$image" ] || [ -z "$server" ]; then
    echo "agent image: ACIBATCH_AGENT_IMAGE or ACIBATCH_REGISTRY_SERVER is not in the azd environment; run azd provision first" >&2
    exit 1
fi

# An image elsewhere (BATCH_AGENT_IMAGE set to another registry) is the operator's to publish.
case "$image" in
"$server"/*) repository=${image#"$server"/} ;;
*)
    echo "agent image: $image is not in $server, so this hook does not build it; push it there yourself"
    exit 0
    ;;
esac

if ! command -v az >/dev/null 2>&1; then
    echo "agent image: the Azure CLI (az) is needed to build $image. Install it and run 'azd hooks run postprovision'," >&2
    echo "or build it by hand: az acr build --registry ${server%%.*} --image $repository agent" >&2
    echo "(ACIBATCH_BUILD_AGENT_IMAGE=false skips this step)" >&2
    exit 1
fi

subscription=${AZURE_SUBSCRIPTION_ID:+--subscription $AZURE_SUBSCRIPTION_ID}
if ! az account show $subscription >/dev/null 2>&1; then
    echo "agent image: the Azure CLI is not signed in to subscription ${AZURE_SUBSCRIPTION_ID:-?}: run 'az login'," >&2
    echo "then 'azd hooks run postprovision' (ACIBATCH_BUILD_AGENT_IMAGE=false skips this step)" >&2
    exit 1
fi

echo "agent image: building $image from agent/ with ACR Tasks"
# shellcheck disable=SC2086  # $subscription is empty or two words on purpose
az acr build $subscription --registry "${server%%.*}" --image "$repository" "$root/agent"
