#!/usr/bin/env bash
# Build deploy/Dockerfile with podman on a local Debian base and smoke-test the image.
#
#   sudo deploy/test-image.sh          (.ci/run calls it after `make test`)
#
# No Docker engine and no registry: the base is `debootstrap --variant=minbase bookworm`
# plus Debian's python3, imported into podman and passed as the Dockerfile's PYTHON_IMAGE.
# It is cached in $EXMAIL_BRIDGE_IMAGE_CACHE (default /var/cache/exmail-bridge-image) and
# rebuilt only when the package list changes. The script installs podman, runc, slirp4netns
# and debootstrap with apt when they are missing, and writes the containers.conf it uses.
# Every check that fails stops the script with one line and a non-zero exit; every
# container and volume it started is removed by id on the way out.
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
here=deploy/test-image

CACHE=${EXMAIL_BRIDGE_IMAGE_CACHE:-/var/cache/exmail-bridge-image}
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
IMAGE=localhost/exmail-bridge:test
BUILD_STAGE=localhost/exmail-bridge-build:test
# The proxy in front of the package index presents a CA only the host trusts: the build
# mounts the host's bundle read-only over the base's and never copies it into a layer.
HOST_CA=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

STARTED=()   # "ctr:<id>" and "vol:<id>", removed on exit
WORK=$(mktemp -d)
RECEIVER_PID=

PASSED=0
say() { echo "test-image: $*"; }
ok() { PASSED=$((PASSED + 1)); say "ok  $*"; }
die() { echo "test-image: FAIL: $*" >&2; exit 1; }

# The Debian mirror for the base: $DEBIAN_MIRROR, else the one this host's apt uses.
host_mirror() {
    local f uri=
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk '/^URIs:/ {print $2; exit}' "$f")
        [ -z "$uri" ] || break
    done
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
            /etc/apt/sources.list)
    fi
    echo "$uri"
}
MIRROR=${DEBIAN_MIRROR:-$(host_mirror)}
[ -n "$MIRROR" ] || die "no Debian mirror: set DEBIAN_MIRROR (this host's apt sources name none)"

# Remove what this run started, newest first, by id (never by name or filter).
remove_started() {
    local i kind id
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        kind=${STARTED[i]%%:*} id=${STARTED[i]#*:}
        case $kind in
            ctr) podman stop -t 5 "$id" >/dev/null 2>&1 || true
                 podman rm -f -v "$id" >/dev/null 2>&1 || true ;;
            vol) podman volume rm -f "$id" >/dev/null 2>&1 || true ;;
        esac
    done
}

cleanup() {
    remove_started
    if [ -n "$RECEIVER_PID" ]; then kill "$RECEIVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM
# Anything else that fails still ends in one FAIL line that says where.
trap 'die "line $LINENO: $BASH_COMMAND failed"' ERR

# ---- the tools ----------------------------------------------------------------------------

install_tools() {
    local need=()
    # debootstrap and the rootful podman this script drives both need root.
    [ "$(id -u)" -eq 0 ] || die "podman cannot run containers here for this script: run it as root"
    command -v podman >/dev/null || need+=(podman)
    command -v runc >/dev/null || need+=(runc)
    command -v slirp4netns >/dev/null || need+=(slirp4netns)
    command -v debootstrap >/dev/null || need+=(debootstrap)
    [ ${#need[@]} -eq 0 ] && return
    say "installing ${need[*]}"
    # runc, not crun: crun refuses this host's hybrid cgroup layout. --no-install-recommends
    # keeps crun (and the rest of podman's recommends) off.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${need[@]}" >/dev/null
}

# podman's default ulimits (nofile 1048576) exceed this host's hard limits, so every
# container would fail to start: give explicit ones, no higher than the host's.
write_containers_conf() {
    local nofile nproc
    nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=65536
    nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] && nproc=4096
    nofile=$((nofile < 65536 ? nofile : 65536))
    nproc=$((nproc < 4096 ? nproc : 4096))
    cat >"$WORK/containers.conf" <<EOF
# Written by deploy/test-image.sh for its own podman calls.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    export CONTAINERS_CONF=$WORK/containers.conf
}

# ---- the base -----------------------------------------------------------------------------

base_image() {
    local key tar rootfs
    key=$(printf '%s %s %s' "$SUITE" "$BASE_PACKAGES" "$MIRROR" | sha256sum | cut -c1-12)
    BASE=localhost/exmail-bridge-base:$SUITE-$key
    tar=$CACHE/base-$SUITE-$key.tar
    if [ ! -s "$tar" ]; then
        say "debootstrap $SUITE into $CACHE (cached for later runs)"
        mkdir -p "$CACHE"
        rm -rf "$CACHE"/rootfs.* "$CACHE"/*.tmp   # left by an interrupted run
        rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
        debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$MIRROR" \
            >"$WORK/debootstrap.log" 2>&1 \
            || { rm -rf "$rootfs"; die "debootstrap failed: $(tail -1 "$WORK/debootstrap.log")"; }
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*
        tar -C "$rootfs" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
        rm -rf "$rootfs"
    fi
    podman image exists "$BASE" && return
    podman import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' "$tar" "$BASE" >/dev/null
}

check_podman_works() {
    local out
    out=$(podman info 2>&1 >/dev/null) \
        || die "podman cannot run containers on this machine: $(tail -1 <<<"$out")"
}

check_podman_runs() {
    local out
    out=$(podman run --rm --network none "$BASE" true 2>&1) \
        || die "podman cannot run containers on this machine: $(tail -1 <<<"$out")"
}

# podman_build TAG ARGS...: build deploy/Dockerfile as TAG; remove, by id, the image TAG named
# before (untagged now), so runs do not pile up layers.
podman_build() {
    local tag=$1 previous ca=()
    shift
    previous=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    [ -s "$HOST_CA" ] && ca=(-v "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro")
    # --format docker: the OCI format has no HEALTHCHECK, and podman would drop it silently.
    # --network host: the build only fetches packages; no bridge or NAT rule on the host.
    podman build --format docker --pull=never --network host \
        --build-arg PYTHON_IMAGE="$BASE" "${ca[@]}" "$@" \
        -f deploy/Dockerfile -t "$tag" . >>"$WORK/build.log" 2>&1 \
        || die "podman build failed: $(grep -v '^ *$' "$WORK/build.log" | tail -1)"
    if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$tag")" ]; then
        podman rmi "$previous" >/dev/null 2>&1 || true
    fi
}

# The build stage is tagged too: it holds the cached dependency layer, which an untagged
# stage would lose to the clean-up above.
build_image() {
    local start=$SECONDS
    podman_build "$BUILD_STAGE" --target build
    podman_build "$IMAGE"
    BUILD_S=$((SECONDS - start))
}

# ---- the smoke test: deploy/test-image/smoke.sh ------------------------------------------

# shellcheck source=test-image/smoke.sh
source "$here/smoke.sh"

main() {
    local start=$SECONDS
    install_tools
    write_containers_conf
    check_podman_works
    base_image
    say "tools and base ready in $((SECONDS - start))s"
    check_podman_runs
    build_image
    say "built $IMAGE in ${BUILD_S}s on $BASE"
    check_version
    check_ca_not_baked
    start_receiver
    write_smoke_config
    start_containers
    check_endpoints
    check_mail_reaches_host
    check_healthcheck
    check_moved_listener
    check_user_and_pid1
    check_read_only
    check_stop
    check_nothing_left
    local size
    size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
    say "image $((size / 1000000)) MB, build ${BUILD_S}s, stop ${STOP_MS} ms"
    # The plain closing line CI reads, like a test runner's.
    say "$PASSED passed, 0 failed"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main
fi
