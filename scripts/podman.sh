#!/usr/bin/env bash
# Podman as the container engine on a machine without a Docker daemon or a registry
# (Debian bookworm, as root). All engine state lives under $SMVISION_PODMAN_DIR
# (default build/podman): configuration, image storage, run files, CNI networks, the
# debootstrap root file system and the Docker-compatible socket.
#
#   scripts/podman.sh check           say what is missing, and how to install it
#   scripts/podman.sh packages        the Debian packages that provide it (for apt-get)
#   scripts/podman.sh ensure          what `make test` runs first: install them when root and
#                                     missing; else say how, or how to skip the image tests
#   eval "$(scripts/podman.sh env)"   point podman, docker, docker-compose and the SDK here
#   scripts/podman.sh base            import a Debian bookworm base image (debootstrap; once)
#   scripts/podman.sh build ARGS...   podman build FROM that base, with the host's CA bundle
#                                     and pip settings mounted for the build only
#   scripts/podman.sh service [SOCK]  serve the Docker API on the socket (foreground; default
#                                     build/podman/podman.sock, which `env` names)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="$(mkdir -p "${SMVISION_PODMAN_DIR:-$ROOT/build/podman}" && cd "${SMVISION_PODMAN_DIR:-$ROOT/build/podman}" && pwd)"
BASE_IMAGE="localhost/smvision-base:bookworm"
SOCKET="$STATE/podman.sock"
HOST_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"
APT_PACKAGES="podman runc debootstrap docker-compose golang-github-containernetworking-plugin-dnsname"
# Skips the image tests; tests/container/engine.py reads it with the same values.
OPT_OUT_ENV="SMVISION_SKIP_CONTAINER_TESTS"

missing() {
    local problems=()
    [ "$(id -u)" = 0 ] || problems+=("root (podman with vfs storage and CNI networks runs as root here)")
    for tool in podman runc debootstrap docker-compose; do
        command -v "$tool" >/dev/null || problems+=("$tool")
    done
    # The SageMaker SDK runs the docker CLI itself (docker compose version, docker context).
    command -v docker >/dev/null || problems+=("the docker CLI (Docker's static binary, or Debian's docker.io)")
    [ -x /usr/lib/cni/dnsname ] || problems+=("the dnsname CNI plugin")
    if [ "${#problems[@]}" -gt 0 ]; then
        printf 'missing: %s\n' "${problems[@]}"
        echo "install: apt-get install -y --no-install-recommends $APT_PACKAGES (as root)"
        return 1
    fi
}

opted_out() {
    local value
    value="$(printf '%s' "${!OPT_OUT_ENV:-}" | tr -d '[:space:]' | tr '[:upper:]' '[:lower:]')"
    [ "$value" = 1 ] || [ "$value" = true ] || [ "$value" = yes ]
}

# `make test` runs the image tests, which need the engine: install it as `make venv`
# installs Python packages, or stop before pytest starts and say what to do instead.
ensure() {
    if opted_out; then
        echo "$OPT_OUT_ENV is set: the image tests (tests/container) will be skipped."
        return 0
    fi
    missing >/dev/null && return 0
    if [ "$(id -u)" != 0 ]; then
        missing >&2 || true
        cat >&2 <<MESSAGE
make test runs the image tests (tests/container), which build and run the image with
rootful podman from Debian. Run it as root (the packages above are then installed for
you), or skip the image tests on this machine with
    $OPT_OUT_ENV=1 make test
MESSAGE
        return 1
    fi
    echo "Installing the container engine for the image tests: $APT_PACKAGES"
    local log="$STATE/apt-get.log"
    # --no-install-recommends: with recommends, docker-compose pulls in docker.io.
    # shellcheck disable=SC2086 # the package list splits into words on purpose
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends $APT_PACKAGES; } >"$log" 2>&1; then
        tail -20 "$log" >&2
        echo "apt-get failed (its log: $log); fix it, or set $OPT_OUT_ENV=1 to skip the" \
            "image tests." >&2
        return 1
    fi
    missing >&2 || {
        echo "Debian's packages do not provide all of it; install the rest, or set" \
            "$OPT_OUT_ENV=1 to skip the image tests." >&2
        return 1
    }
}

# overlay where the kernel lets us mount it (fast layers); else vfs, which copies the
# whole file system for every layer (a cold build takes several times longer).
storage_driver() {
    if [ -n "${SMVISION_STORAGE_DRIVER:-}" ]; then
        echo "$SMVISION_STORAGE_DRIVER"
        return
    fi
    local probe="$STATE/overlay-probe"
    rm -rf "$probe" && mkdir -p "$probe"/{lower,upper,work,merged}
    if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
        "$probe/merged" 2>/dev/null; then
        umount "$probe/merged"
        echo overlay
    else
        echo vfs
    fi
    rm -rf "$probe"
}

write_config() {
    mkdir -p "$STATE/cni" "$STATE/tmp"
    # crun fails here ("cgroups in hybrid mode not supported"); the ulimits are what
    # TensorFlow and the toolkit need; networks stay in this directory, not /etc/cni.
    cat >"$STATE/containers.conf.new" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
tmp_dir = "$STATE/tmp"

[network]
network_config_dir = "$STATE/cni"
EOF
    cat >"$STATE/storage.conf.new" <<EOF
[storage]
driver = "$(storage_driver)"
runroot = "$STATE/run"
graphroot = "$STATE/storage"
EOF
    # pip inside the build reaches the index through the host's proxy, whose CA is in
    # the host bundle; mounted with this file only while the build runs.
    cat >"$STATE/pip.conf.new" <<EOF
[global]
cert = $HOST_CA_BUNDLE
EOF
    for name in containers.conf storage.conf pip.conf; do
        mv "$STATE/$name.new" "$STATE/$name"
    done
}

print_env() {
    printf 'export CONTAINERS_CONF=%q\n' "$STATE/containers.conf"
    printf 'export CONTAINERS_STORAGE_CONF=%q\n' "$STATE/storage.conf"
    printf 'export DOCKER_HOST=%q\n' "unix://$SOCKET"
}

use_config() {
    write_config
    export CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage.conf"
}

build_base() {
    if podman image exists "$BASE_IMAGE"; then
        echo "$BASE_IMAGE is already there"
        return
    fi
    local rootfs="$STATE/rootfs"
    rm -rf "$rootfs" "$rootfs.partial"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs.partial" >"$STATE/debootstrap.log" 2>&1 \
        || { tail -20 "$STATE/debootstrap.log" >&2; exit 1; }
    # What debian:bookworm-slim leaves out too: package caches and lists, docs, locales.
    rm -rf "$rootfs.partial"/var/cache/apt/* "$rootfs.partial"/var/lib/apt/lists/* \
        "$rootfs.partial"/usr/share/doc/* "$rootfs.partial"/usr/share/man/* \
        "$rootfs.partial"/usr/share/info/* "$rootfs.partial"/usr/share/locale/*
    mv "$rootfs.partial" "$rootfs"
    tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE"
    rm -rf "$rootfs"
}

build_image() {
    podman build \
        --volume "$HOST_CA_BUNDLE:$HOST_CA_BUNDLE:ro" \
        --volume "$STATE/pip.conf:/etc/pip.conf:ro" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        "$@"
}

command="${1:-}"
shift || true
case "$command" in
    check) missing ;;
    packages) echo "$APT_PACKAGES" ;;
    ensure) ensure ;;
    env) write_config; print_env ;;
    base) missing >&2 && use_config && build_base ;;
    build) missing >&2 && use_config && build_image "$@" ;;
    service)
        missing >&2 && use_config
        socket="${1:-$SOCKET}"
        rm -f "$socket"
        exec podman system service --time=0 "unix://$socket" ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2 ;;
esac
