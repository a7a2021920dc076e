#!/usr/bin/env bash
# Build the smvision image for linux/amd64, push it to Amazon ECR and print its URI.
#
#   docker/build_and_push.sh [cpu|gpu] [TAG]        (TAG defaults to the device)
#
# Environment: SMVISION_REGION (required), SMVISION_REPOSITORY (default smvision),
# CONTAINER_ENGINE (default docker; podman works), PYTHON (default .venv/bin/python),
# DRY_RUN=1 to print the engine commands instead of running them. The ECR repository is
# created if missing; AWS access goes through the launchers' boto3, so no AWS CLI is needed.
set -euo pipefail

device=${1:-cpu}
tag=${2:-$device}
case "$device" in
    cpu|gpu) ;;
    *) echo "usage: $0 [cpu|gpu] [TAG]  (got device '$device')" >&2; exit 2 ;;
esac
if [[ ! "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
    echo "error: tag '$tag' is not a valid image tag (letters, digits, _ . -; at most 128)" >&2
    exit 2
fi
: "${SMVISION_REGION:?set SMVISION_REGION to the AWS region to push to, such as us-east-1}"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
engine=${CONTAINER_ENGINE:-docker}
repository=${SMVISION_REPOSITORY:-smvision}
# SageMaker cannot pull the multi-platform index that BuildKit's default provenance
# attestations turn a single image into.
export BUILDX_NO_DEFAULT_ATTESTATIONS=1

run() {
    if [[ "${DRY_RUN:-}" == 1 ]]; then
        echo "+ $*" >&2
    else
        "$@" >&2
    fi
}

repository_uri=$(cd "$root" && "$python" -m launch.common.ecr repository "$repository")
registry=${repository_uri%%/*}
image="$repository_uri:$tag"

password=$(cd "$root" && "$python" -m launch.common.ecr password)
if [[ "${DRY_RUN:-}" == 1 ]]; then
    echo "+ $engine login --username AWS --password-stdin $registry" >&2
else
    printf '%s' "$password" | "$engine" login --username AWS --password-stdin "$registry" >&2
fi
run "$engine" build --platform linux/amd64 --build-arg "DEVICE=$device" -t "$image" "$root"
run "$engine" push "$image"
echo "$image"
