#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine.
#
#   scripts/ensure-docker.sh
#
# Idempotent and bounded in time:
#   * if `docker info` answers, exit 0 at once;
#   * if the engine is not installed and we are root, install Debian's
#     docker.io with apt-get (non-interactive);
#   * start dockerd in the background (log: $CODEX_DOCKERD_LOG, by default
#     /var/log/codex-dockerd.log, or .cache/dockerd.log when /var/log is not
#     writable) and wait up to $CODEX_DOCKER_WAIT seconds (default 40) for it.
# Exits non-zero with one clear sentence when Docker cannot be made to work.
set -euo pipefail

WAIT_SECONDS="${CODEX_DOCKER_WAIT:-40}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf 'ensure-docker: %s\n' "$*" >&2; }
die() { printf 'ensure-docker: ERROR: %s\n' "$*" >&2; exit 1; }

dockerd_running() {
    # No dependency on procps: look at /proc directly.
    local comm
    for comm in /proc/[0-9]*/comm; do
        [ "$(cat "$comm" 2>/dev/null)" = dockerd ] && return 0
    done
    return 1
}

docker_answers() {
    command -v docker >/dev/null 2>&1 || return 1
    timeout 10 docker info >/dev/null 2>&1
}

# Ptys are counted host-wide, not per container: with the default kernel.pty.max
# (4096) one sandbox could take them all. Make room for every sandbox at its own
# limits (pids x nofile, about 16 Ki each); the server checks this again at start.
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/kernel/pty/max ] \
        && [ "$(cat /proc/sys/kernel/pty/max)" -lt 1048576 ]; then
    echo 1048576 > /proc/sys/kernel/pty/max && log "kernel.pty.max set to 1048576"
fi
# Linux AIO events (fs.aio-max-nr, 65536 by default) are host-wide too; a sandbox's
# are charged to its memory (64 bytes each), so room for 128 sandboxes of 256 MiB.
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/fs/aio-max-nr ] \
        && [ "$(cat /proc/sys/fs/aio-max-nr)" -lt 1073741824 ]; then
    echo 1073741824 > /proc/sys/fs/aio-max-nr && log "fs.aio-max-nr set to 1073741824"
fi

if docker_answers; then
    exit 0
fi

is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1

# 1. Install the engine if it is missing.
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    if [ "$is_root" -ne 1 ]; then
        die "Docker is not installed; run this script as root (or run 'sudo apt-get install -y docker.io') to install it."
    fi
    command -v apt-get >/dev/null 2>&1 \
        || die "Docker is not installed and apt-get is not available; install a Docker engine by hand."
    log "installing docker.io with apt-get (this takes a minute or two)"
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-o DPkg::Lock::Timeout=120 -o Acquire::Retries=3)
    timeout 600 apt-get "${apt_opts[@]}" update -q \
        || die "'apt-get update' failed; check the network access to the Debian mirror."
    # With recommends (apparmor, cgroupfs-mount, ...), as on the machines where it was tried.
    timeout 900 apt-get "${apt_opts[@]}" install -y -q docker.io \
        || die "'apt-get install docker.io' failed; see the apt output above."
    hash -r
    command -v dockerd >/dev/null 2>&1 || die "docker.io was installed but 'dockerd' is still not on PATH."
fi

# 2. Start the daemon unless one is already running (perhaps still starting).
if [ "$is_root" -ne 1 ]; then
    if [ -S /var/run/docker.sock ]; then
        die "The Docker daemon runs but does not answer to user $(id -un); add this user to the 'docker' group or run as root."
    fi
    die "The Docker daemon is not running; start it as root (for example 'sudo scripts/ensure-docker.sh')."
fi

# crun starts and removes a sandbox with ~25 % less machine CPU than runc
# (docs/performance.md): install Debian's, and register it with the engine started here
# when this host's cgroup layout lets it run. On a hybrid host (cgroup v1 plus a v2
# hierarchy) crun refuses to start while any controller sits on the v2 side; a
# controller no v2 group uses (on the machines tried: only hugetlb) is mounted as a v1
# hierarchy instead, as runc also accepts. Set CODEX_NO_CRUN=1 to skip all of this.
crun_flags=()
fit_cgroups_for_crun() {
    command -v crun >/dev/null 2>&1 || return 1
    local unified=/sys/fs/cgroup/unified c
    [ -r "$unified/cgroup.controllers" ] || return 0  # pure v1 or pure v2: fine
    for c in $(cat "$unified/cgroup.controllers"); do
        [ -e "/sys/fs/cgroup/$c" ] && return 1  # there twice: leave it alone
        mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" \
            || { rmdir "/sys/fs/cgroup/$c" 2>/dev/null; return 1; }
        log "cgroup controller $c mounted as a v1 hierarchy (for crun)"
    done
    [ -z "$(cat "$unified/cgroup.controllers")" ]
}
prepare_crun() {
    [ "$is_root" -eq 1 ] && [ -z "${CODEX_NO_CRUN:-}" ] || return 0
    if ! command -v crun >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        log "installing crun with apt-get"
        timeout 600 apt-get -o DPkg::Lock::Timeout=120 install -y -q crun >/dev/null 2>&1 \
            || timeout 900 bash -c 'apt-get update -q >/dev/null && apt-get install -y -q crun >/dev/null' \
            || log "crun could not be installed; the sandboxes will run under runc"
    fi
    if fit_cgroups_for_crun; then
        # A daemon.json that registers it already would clash with the flag.
        grep -qs '"crun"' /etc/docker/daemon.json || crun_flags=(--add-runtime "crun=$(command -v crun)")
    elif command -v crun >/dev/null 2>&1; then
        log "crun cannot run under this host's cgroup layout; the sandboxes will run under runc"
    fi
}

if [ -n "${CODEX_DOCKERD_LOG:-}" ]; then
    DOCKERD_LOG="$CODEX_DOCKERD_LOG"
elif [ -w /var/log ]; then
    DOCKERD_LOG=/var/log/codex-dockerd.log
else
    mkdir -p "$REPO_ROOT/.cache"
    DOCKERD_LOG="$REPO_ROOT/.cache/dockerd.log"
fi

if dockerd_running; then
    log "a dockerd process is already running; waiting for it to answer"
else
    prepare_crun
    log "starting dockerd in the background (log: $DOCKERD_LOG)"
    printf '\n==== %s: started by scripts/ensure-docker.sh ====\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" >>"$DOCKERD_LOG"
    # setsid + nohup: the daemon survives the end of this shell and of its session.
    setsid nohup dockerd "${crun_flags[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
fi

# 3. Wait, bounded, for `docker info`.
deadline=$((SECONDS + WAIT_SECONDS))
while [ "$SECONDS" -lt "$deadline" ]; do
    if docker_answers; then
        log "Docker engine is ready ($(timeout 10 docker info --format '{{.ServerVersion}}' 2>/dev/null || echo '?'))"
        exit 0
    fi
    sleep 1
done

printf 'ensure-docker: ERROR: dockerd did not answer within %ss; last lines of %s:\n' "$WAIT_SECONDS" "$DOCKERD_LOG" >&2
tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
exit 1
