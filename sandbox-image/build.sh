#!/usr/bin/env bash
# Build the CodeX sandbox image, with or without an image registry.
#
#   sandbox-image/build.sh [--force]
#
# Environment:
#   CODEX_SANDBOX_IMAGE  tag to build           (default codex-sandbox:latest)
#   CODEX_BASE_IMAGE     base image to build on (default python:3.12-slim)
#   CODEX_DEBIAN_MIRROR  mirror for the debootstrap fallback
#                        (default: from /etc/apt sources, else deb.debian.org)
#   PYTHON               host Python used to run 'pip download' (default python3)
#
# Steps: (a) exit at once if the image already carries the hash of this
# script, the Dockerfile, the package list and the base name; (b) pick the
# base: local image, else 'docker pull', else a local Debian base made with
# debootstrap and 'docker import' (codex-base:<suite>); (c) download wheels
# matching the base's Python on the host into .wheels/ (cached); (d) build
# with --network none; (e) smoke-test, then tag.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
cd "$SCRIPT_DIR"

IMAGE="${CODEX_SANDBOX_IMAGE:-codex-sandbox:latest}"
BASE_IMAGE="${CODEX_BASE_IMAGE:-python:3.12-slim}"
DEBIAN_SUITE=bookworm
LOCAL_BASE="codex-base:$DEBIAN_SUITE"
PYTHON="${PYTHON:-python3}"
# What the sandbox offers; pip is downloaded too, to run the install.
# Pinned so that two builds give the same sandbox.
PACKAGES=(numpy==2.4.6 pandas==3.1.1 matplotlib==3.11.2)
HASH_LABEL=org.codex.build-hash
WHEEL_DIR="$SCRIPT_DIR/.wheels"
CACHE_DIR="$REPO_ROOT/.cache"

say() { printf 'sandbox-image: %s\n' "$*"; }
die() { printf 'sandbox-image: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SCRIPT_DIR/build.sh"
}

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$arg' (usage: sandbox-image/build.sh [--force])" ;;
    esac
done

# ---------------------------------------------------------------- (a) hash
build_hash="$(
    { cat Dockerfile build.sh; printf 'packages=%s\nbase=%s\n' "${PACKAGES[*]}" "$BASE_IMAGE"; } \
        | sha256sum | cut -c1-24
)"

image_hash() {
    timeout 30 docker image inspect \
        --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$1" 2>/dev/null || true
}

if [ "$force" -eq 0 ] && [ "$(image_hash "$IMAGE")" = "$build_hash" ]; then
    say "sandbox image up to date ($IMAGE, build hash $build_hash)"
    exit 0
fi

start_time=$SECONDS

# The slow path needs a working engine.
if ! timeout 15 docker info >/dev/null 2>&1; then
    if [ -x "$REPO_ROOT/scripts/ensure-docker.sh" ] || [ -f "$REPO_ROOT/scripts/ensure-docker.sh" ]; then
        bash "$REPO_ROOT/scripts/ensure-docker.sh" \
            || die "no Docker engine is available (scripts/ensure-docker.sh failed)."
    else
        die "no Docker engine answers 'docker info'; start one and run this script again."
    fi
fi

# One build at a time; a build that waited may find the work already done.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/sandbox-build.lock"
if ! flock -n 9; then
    say "another build is running; waiting for it (up to 60 min)"
    flock -w 3600 9 || die "timed out waiting for the other sandbox build to finish."
    if [ "$force" -eq 0 ] && [ "$(image_hash "$IMAGE")" = "$build_hash" ]; then
        say "sandbox image up to date ($IMAGE, built by the other run)"
        exit 0
    fi
fi

TMP_WHEELS=""
cleanup() {
    if [ -n "$TMP_WHEELS" ] && [ -d "$TMP_WHEELS" ]; then
        rm -rf "$TMP_WHEELS"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

image_exists() { timeout 30 docker image inspect "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- (b) base
make_debian_base() {
    # One recipe for the local Debian base, shared with the server image's build.
    CODEX_LOCAL_BASE="$LOCAL_BASE" bash "$REPO_ROOT/scripts/make-base.sh" \
        || die "could not make the local base $LOCAL_BASE (see the message above)."
}

if image_exists "$BASE_IMAGE"; then
    base="$BASE_IMAGE"
    say "base image: $base (present locally)"
elif say "pulling $BASE_IMAGE (60 s at most)" && timeout 60 docker pull "$BASE_IMAGE"; then
    base="$BASE_IMAGE"
    say "base image: $base (pulled)"
else
    say "cannot pull $BASE_IMAGE (no registry reachable?); falling back to a local Debian $DEBIAN_SUITE base"
    make_debian_base
    base="$LOCAL_BASE"
    say "base image: $base (debootstrap, Debian's python3)"
fi

# ---------------------------------------------------------------- (c) wheels
py_info="$(timeout 120 docker run --rm --network none --entrypoint python3 "$base" -c \
    'import os, platform, sys; print("%d.%d" % sys.version_info[:2], platform.machine(), os.confstr("CS_GNU_LIBC_VERSION").split()[-1])')" \
    || die "cannot run python3 in the base image $base; the base must provide python3."
read -r py_version py_machine glibc_version <<<"$py_info"
say "base Python $py_version on $py_machine (glibc $glibc_version)"

case "$py_machine" in
    x86_64|aarch64|ppc64le|s390x) ;;
    *) die "unsupported machine '$py_machine' in the base image (expected x86_64 or aarch64)." ;;
esac
# shellcheck source=../scripts/wheel-platforms.sh
. "$REPO_ROOT/scripts/wheel-platforms.sh"
manylinux_platform_args "$py_machine" "$glibc_version"

stamp="python=$py_version machine=$py_machine glibc=$glibc_version packages=${PACKAGES[*]} pip"
if [ -f "$WHEEL_DIR/.stamp" ] && [ "$(cat "$WHEEL_DIR/.stamp")" = "$stamp" ] \
        && compgen -G "$WHEEL_DIR/pip-*.whl" >/dev/null; then
    say "reusing the wheels in sandbox-image/.wheels/ (Python $py_version)"
else
    say "downloading wheels for Python $py_version/$py_machine into sandbox-image/.wheels/"
    TMP_WHEELS="$(mktemp -d "$SCRIPT_DIR/.wheels.tmp.XXXXXX")"
    # PIP_CONSTRAINT is blanked: a host constraints file pins versions for the
    # host's Python, not for the image's. Index, mirrors and certificates stay.
    if ! PIP_CONSTRAINT="" PIP_REQUIRE_VIRTUALENV="" timeout 900 "$PYTHON" -m pip download \
            --disable-pip-version-check --progress-bar off \
            --only-binary=:all: --implementation cp --python-version "$py_version" \
            "${platform_args[@]}" -d "$TMP_WHEELS" "${PACKAGES[@]}" pip; then
        die "'pip download' of the sandbox wheels failed (is PyPI reachable and '$PYTHON -m pip' installed?)."
    fi
    printf '%s\n' "$stamp" >"$TMP_WHEELS/.stamp"
    rm -rf "$WHEEL_DIR"
    mv "$TMP_WHEELS" "$WHEEL_DIR"
    TMP_WHEELS=""
fi
compgen -G "$WHEEL_DIR/pip-*.whl" >/dev/null || die "no pip wheel in sandbox-image/.wheels/; delete that folder and retry."

# ---------------------------------------------------------------- (d) build
candidate="codex-sandbox-candidate:$build_hash"
build_log="$CACHE_DIR/sandbox-build.log"
build_args=(
    --build-arg "BASE_IMAGE=$base"
    --build-arg "SANDBOX_PACKAGES=${PACKAGES[*]}"
    --label "$HASH_LABEL=$build_hash"
    --label "org.codex.base-image=$base"
    -t "$candidate"
    .
)
say "building $IMAGE on $base (network none; log $build_log)"
if ! timeout 1800 docker build --network none "${build_args[@]}" 2>&1 | tee "$build_log"; then
    if grep -qiE 'network (mode|none)|--network|networkmode' "$build_log"; then
        say "the engine refused --network none; building with its default network"
        timeout 1800 docker build "${build_args[@]}" 2>&1 | tee "$build_log" \
            || die "docker build failed; see the output above (also in $build_log)."
    else
        die "docker build failed; see the output above (also in $build_log)."
    fi
fi

# ---------------------------------------------------------------- (e) smoke
say "smoke check: read-only root, tmpfs /tmp, uid 1000, no network"
smoke="$(timeout 120 docker run --rm --network none --read-only --tmpfs /tmp --user 1000:1000 \
    "$candidate" python3 -c "import numpy, pandas, matplotlib.pyplot; print('ok')" 2>&1)" || true
if [ "$(printf '%s' "$smoke" | tail -n 1)" != ok ]; then
    printf '%s\n' "$smoke" >&2
    timeout 60 docker image rm "$candidate" >/dev/null 2>&1 || true
    die "the new image failed its smoke check (output above); $IMAGE was left unchanged."
fi
timeout 60 docker tag "$candidate" "$IMAGE" || die "cannot tag the new image as $IMAGE."
timeout 60 docker image rm "$candidate" >/dev/null 2>&1 || true
# Drop untagged images left behind: earlier sandbox images and install stages.
for label in org.codex.sandbox=1 org.codex.sandbox-stage=install; do
    timeout 120 docker image prune -f --filter "label=$label" >/dev/null 2>&1 || true
done

size="$(timeout 30 docker image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null || echo 0)"
say "built $IMAGE (base $base, Python $py_version, $((size / 1000000)) MB, hash $build_hash) in $((SECONDS - start_time)) s"
