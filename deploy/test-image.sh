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
# container, pod and volume it started is removed by id on the way out.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
here=deploy/test-image

CACHE=${EXMAIL_BRIDGE_IMAGE_CACHE:-/var/cache/exmail-bridge-image}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
IMAGE=localhost/exmail-bridge:test
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
    [ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM

# ---- the tools ----------------------------------------------------------------------------

install_tools() {
    local need=()
    command -v podman >/dev/null || need+=(podman)
    command -v runc >/dev/null || need+=(runc)
    command -v slirp4netns >/dev/null || need+=(slirp4netns)
    command -v debootstrap >/dev/null || need+=(debootstrap)
    [ ${#need[@]} -eq 0 ] && return
    [ "$(id -u)" -eq 0 ] || die "podman cannot run here: ${need[*]} missing and not root to install"
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

check_podman_runs() {
    local out
    out=$(podman run --rm --network none "$BASE" true 2>&1) \
        || die "podman cannot run containers on this machine: $(tail -1 <<<"$out")"
}

build_image() {
    local start
    start=$(date +%s)
    # --format docker: the OCI format has no HEALTHCHECK, and podman would drop it silently.
    podman build --format docker --pull=never --network host \
        --build-arg PYTHON_IMAGE="$BASE" \
        -v "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro" \
        -f deploy/Dockerfile -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
        || die "podman build failed: $(grep -v '^ *$' "$WORK/build.log" | tail -1)"
    BUILD_S=$(($(date +%s) - start))
}

# ---- the smoke test -------------------------------------------------------------------------

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

status() { curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" || true; }

# wait_for WHAT SECONDS COMMAND...: retry COMMAND until it succeeds, else fail naming WHAT.
wait_for() {
    local what=$1 deadline=$(($(date +%s) + $2))
    shift 2
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || fail_with_logs "$what"
        sleep 0.5
    done
}

fail_with_logs() {
    [ -n "${BRIDGE:-}" ] && podman logs --tail 20 "$BRIDGE" >&2 2>&1 || true
    die "$1"
}

# run_detached VAR ARGS...: `podman run -d ARGS`, its id recorded for cleanup and put in VAR
# (not printed: a $(...) subshell would lose the record, and the container with it).
run_detached() {
    local var=$1 id
    shift
    id=$(podman run -d "$@" 2>>"$WORK/podman.log") \
        || die "podman run failed: $(tail -1 "$WORK/podman.log")"
    STARTED+=("ctr:$id")
    printf -v "$var" '%s' "$id"
}

start_receiver() {
    WEBHOOK_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
    python3 "$here/receiver.py" "$WEBHOOK_SECRET" "$WORK/receiver.port" "$WORK/received" &
    RECEIVER_PID=$!
    wait_for "the host's webhook receiver to start" 10 test -s "$WORK/receiver.port"
    touch "$WORK/received"
}

# The bridge's config: listen addresses are left to the image (EXMAIL_BRIDGE_*_LISTEN);
# 10.0.2.2 is slirp4netns' name for the host's loopback, where the receiver listens.
write_smoke_config() {
    cat >"$WORK/config.toml" <<TOML
[bridge]
store = "sqlite:////data/bridge.db"
log_format = "json"
grace_s = 5
startup_window_s = 0

[exmail]
token_url = "http://127.0.0.1:12211/cgi-bin/token"
api_base = "http://127.0.0.1:12211"
listen_hold_s = 5

[[tenants]]
name = "smoke"
client_id = "admin@smoke.test"
client_secret = "\${SMOKE_EXMAIL_KEY}"

[[sinks]]
name = "host"
type = "webhook"
url = "http://10.0.2.2:$(cat "$WORK/receiver.port")/hook"
secret = "\${SMOKE_WEBHOOK_SECRET}"
TOML
    chmod 644 "$WORK/config.toml"
}

# The simulator owns the network namespace (slirp4netns: no bridge, NAT or iptables on the
# host) and publishes every port; the bridge joins it, so it reaches the simulator on
# 127.0.0.1 while its own ports are published through the simulator's.
start_containers() {
    OPS_PORT=$(free_port) PUBLIC_PORT=$(free_port) SIM_PORT=$(free_port)
    VOLUME=$(podman volume create 2>>"$WORK/podman.log") || die "podman volume create failed"
    STARTED+=("vol:$VOLUME")
    run_detached SIM --no-healthcheck \
        --network slirp4netns:allow_host_loopback=true \
        -p "127.0.0.1:$OPS_PORT:9464" -p "127.0.0.1:$PUBLIC_PORT:8080" \
        -p "127.0.0.1:$SIM_PORT:12211" \
        "$IMAGE" simulate --host 0.0.0.0 --port 12211 --wecom-port 0 --hold-s 5
    run_detached BRIDGE --network "container:$SIM" --read-only -v "$VOLUME:/data" \
        -v "$WORK/config.toml:/etc/exmail-bridge/config.toml:ro" \
        -e SMOKE_EXMAIL_KEY=smoke-key -e SMOKE_WEBHOOK_SECRET="$WEBHOOK_SECRET" "$IMAGE"
}

check_version() {
    local out
    out=$(podman run --rm --no-healthcheck --network none "$IMAGE" --version 2>>"$WORK/podman.log") \
        || die "--version failed"
    [[ $out == "exmail-bridge "* ]] || die "--version printed '$out'"
    ok "--version: $out"
}

ops_is() { [ "$(status "http://127.0.0.1:$OPS_PORT$1")" = "$2" ]; }
public_is() { [ "$(status "http://127.0.0.1:$PUBLIC_PORT$1")" = "$2" ]; }

check_endpoints() {
    wait_for "/healthz to answer 200" 60 ops_is /healthz 200
    wait_for "/readyz to answer 200" 60 ops_is /readyz 200
    curl -sf -m 5 "http://127.0.0.1:$OPS_PORT/metrics" | grep -q '^exmail_bridge_build_info' \
        || fail_with_logs "/metrics has no exmail_bridge_build_info"
    ok "/healthz, /readyz, /metrics on the published ops port (9464)"
    wait_for "the public listener's /healthz to answer 200" 10 public_is /healthz 200
    public_is /metrics 404 || fail_with_logs "/metrics is reachable on the public listener"
    ok "public listener on the published port 8080: /healthz 200, no /metrics"
}

check_mail_reaches_host() {
    local subject="smoke $(date +%s%N)"
    curl -sf -m 5 -X POST "http://127.0.0.1:$SIM_PORT/_sim/mail" \
        -H 'content-type: application/json' \
        -d "{\"tenant\": \"admin@smoke.test\", \"to\": \"bob@smoke.test\",
             \"from\": \"test@gzdev.com\", \"subject\": \"$subject\", \"summary\": \"hi\"}" \
        >/dev/null || fail_with_logs "the simulator refused the injected mail"
    wait_for "the mail to reach the host's webhook receiver" 60 grep -q "$subject" "$WORK/received"
    ok "a mail injected at the simulator reached the host's webhook receiver, signed"
}

check_healthcheck() {
    podman healthcheck run "$BRIDGE" >>"$WORK/podman.log" 2>&1 \
        || fail_with_logs "podman healthcheck run: unhealthy"
    ok "podman healthcheck run: healthy"
}

check_user_and_pid1() {
    local uid cmd
    uid=$(podman exec "$BRIDGE" awk '/^Uid:/ {print $2}' /proc/1/status)
    cmd=$(podman exec "$BRIDGE" cat /proc/1/cmdline | tr '\0' ' ')
    [ "$uid" = 10001 ] || die "PID 1 runs as uid '$uid', not 10001"
    [[ $cmd == *"exmail-bridge run"* ]] || die "PID 1 is '$cmd', not the bridge"
    ok "PID 1 is the bridge ($cmd), uid $uid"
}

check_read_only() {
    podman exec "$BRIDGE" touch /probe 2>/dev/null && die "the root filesystem is writable"
    podman exec "$BRIDGE" test -s /data/bridge.db || die "no SQLite store in the /data volume"
    ok "read-only root filesystem, store in the /data volume"
}

check_stop() {
    local start took code
    start=$(date +%s%N)
    podman stop -t 15 "$BRIDGE" >/dev/null 2>>"$WORK/podman.log" || die "podman stop failed"
    took=$((($(date +%s%N) - start) / 1000000))
    code=$(podman inspect --format '{{.State.ExitCode}}' "$BRIDGE")
    [ "$code" = 0 ] || fail_with_logs "the bridge exited $code on SIGTERM"
    STOP_MS=$took
    ok "podman stop -t 15: exit 0 in ${took} ms"
}

# Containers, volumes, and the anonymous volumes podman made for VOLUME /data, all gone.
check_nothing_left() {
    local entry volumes=()
    for entry in "${STARTED[@]}"; do
        case $entry in
            ctr:*) volumes+=($(podman inspect --format '{{range .Mounts}}{{.Name}} {{end}}' \
                       "${entry#ctr:}")) ;;
            vol:*) volumes+=("${entry#vol:}") ;;
        esac
    done
    remove_started
    for entry in "${STARTED[@]}"; do
        [[ $entry == ctr:* ]] && podman container exists "${entry#ctr:}" \
            && die "container ${entry#ctr:} is left"
    done
    for entry in "${volumes[@]}"; do
        podman volume exists "$entry" && die "volume $entry is left"
    done
    ok "every container and volume this run made is removed, by id"
}

# The host's CA bundle was mounted for the build only: the image must still have the base's.
check_ca_not_baked() {
    local image_ca base_ca host_ca
    image_ca=$(podman run --rm --no-healthcheck --network none --entrypoint sha256sum "$IMAGE" /etc/ssl/certs/ca-certificates.crt | cut -c1-64)
    base_ca=$(podman run --rm --network none "$BASE" sha256sum /etc/ssl/certs/ca-certificates.crt | cut -c1-64)
    host_ca=$(sha256sum "$HOST_CA" | cut -c1-64)
    [ "$image_ca" = "$base_ca" ] || die "the image's CA bundle is not the base's"
    ok "CA bundle of the image is the base's (host's is $([ "$host_ca" = "$base_ca" ] && echo the same || echo different))"
}

main() {
    local start=$SECONDS
    install_tools
    write_containers_conf
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
