#!/usr/bin/env bash
# Build the CodeX server image, with or without an image registry.
#
#   deploy/build-server.sh [--tag IMAGE] [--base IMAGE] [--label KEY=VALUE]...
#
# Environment (the flags win):
#   CODEX_SERVER_IMAGE       tag to build (default codex-server:latest)
#   CODEX_SERVER_BASE_IMAGE  base to build on; when unset: python:3.12-slim if the
#                            engine has it or can pull it, else the local Debian base
#                            codex-base:bookworm (made by scripts/make-base.sh if missing)
#   PYTHON                   host Python whose pip downloads the wheels (default python3)
#
# Steps: pick the base; ask it for its Python version; download matching wheels of
# requirements.txt (and pip) on the host into deploy/wheels/ (cached while the
# version and requirements.txt stay the same); docker build --network none; check
# that the image starts `python -m codex --help`; tag it.
#
# Exit codes: 0 built; 1 failed; 3 no base image can be had here (no registry and
# the local base cannot be made): the message says why.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

IMAGE="${CODEX_SERVER_IMAGE:-codex-server:latest}"
BASE_IMAGE="${CODEX_SERVER_BASE_IMAGE:-}"
DEFAULT_BASE=python:3.12-slim
LOCAL_BASE=codex-base:bookworm
PYTHON="${PYTHON:-python3}"
WHEEL_DIR="$REPO_ROOT/deploy/wheels"
CACHE_DIR="$REPO_ROOT/.cache"
labels=()

say() { printf 'build-server: %s\n' "$*"; }
die() { printf 'build-server: ERROR: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --tag) IMAGE="${2:?--tag needs a value}"; shift 2 ;;
        --base) BASE_IMAGE="${2:?--base needs a value}"; shift 2 ;;
        --label) labels+=(--label "${2:?--label needs KEY=VALUE}"); shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

timeout 15 docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info'."
# One build at a time on this checkout (they share deploy/wheels/).
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/server-build.lock"
flock -w 1800 9 || die "timed out waiting for another server build to finish."
image_exists() { timeout 30 docker image inspect "$1" >/dev/null 2>&1; }
start=$SECONDS

# ---------------------------------------------------------------- base
if [ -n "$BASE_IMAGE" ]; then
    if ! image_exists "$BASE_IMAGE"; then
        say "pulling $BASE_IMAGE"
        timeout 120 docker pull "$BASE_IMAGE" >/dev/null \
            || { echo "build-server: CANNOT: the base $BASE_IMAGE is not here and cannot be pulled." >&2; exit 3; }
    fi
    base="$BASE_IMAGE"
elif image_exists "$DEFAULT_BASE"; then
    base="$DEFAULT_BASE"
elif timeout 60 docker pull "$DEFAULT_BASE" >/dev/null 2>&1; then
    base="$DEFAULT_BASE"
    say "pulled $DEFAULT_BASE"
else
    say "cannot pull $DEFAULT_BASE (no registry?); using the local Debian base $LOCAL_BASE"
    if ! image_exists "$LOCAL_BASE"; then
        bash "$REPO_ROOT/scripts/make-base.sh" || exit 3
    fi
    base="$LOCAL_BASE"
fi

py_info="$(timeout 120 docker run --rm --network none --entrypoint python3 "$base" -c \
    'import os, platform, sys; print("%d.%d" % sys.version_info[:2], platform.machine(), os.confstr("CS_GNU_LIBC_VERSION").split()[-1])')" \
    || die "cannot run python3 in the base image $base; the base must provide python3."
read -r py_version py_machine glibc_version <<<"$py_info"
case "$py_version" in
    3.1[1-9]) ;;
    *) die "the base $base has Python $py_version; CodeX needs 3.11 or newer." ;;
esac
say "base $base: Python $py_version on $py_machine (glibc $glibc_version)"

# ---------------------------------------------------------------- wheels
req_hash="$(sha256sum requirements.txt | cut -c1-16)"
base_id="$(timeout 30 docker image inspect --format '{{.Id}}' "$base" | sed 's/^sha256://' | cut -c1-12)"
# The Dockerfile reads the first field ("python=X.Y ") to decide whether these
# wheels fit the base it builds on.
stamp="python=$py_version machine=$py_machine glibc=$glibc_version requirements=$req_hash resolved-on=$base_id"
if [ -f "$WHEEL_DIR/.stamp" ] && [ "$(cat "$WHEEL_DIR/.stamp")" = "$stamp" ] \
        && compgen -G "$WHEEL_DIR/pip-*.whl" >/dev/null; then
    say "reusing the wheels in deploy/wheels/"
else
    say "downloading wheels for Python $py_version/$py_machine into deploy/wheels/"
    # shellcheck source=../scripts/wheel-platforms.sh
    . "$REPO_ROOT/scripts/wheel-platforms.sh"
    manylinux_platform_args "$py_machine" "$glibc_version"
    tmp="$(mktemp -d "$REPO_ROOT/deploy/wheels.tmp.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    # PIP_CONSTRAINT blanked: a host constraints file pins for the host's Python.
    PIP_CONSTRAINT="" PIP_REQUIRE_VIRTUALENV="" timeout 900 "$PYTHON" -m pip download \
            --disable-pip-version-check --progress-bar off --quiet \
            --only-binary=:all: --implementation cp --python-version "$py_version" \
            "${platform_args[@]}" -d "$tmp" -r requirements.txt pip \
        || die "'pip download' failed (is PyPI reachable and '$PYTHON -m pip' installed?)."
    # pip download evaluates dependency markers for the host's interpreter, not the
    # base's (redis needs async-timeout only below Python 3.11.3, for example): ask
    # the base's own interpreter to resolve offline, and fetch what it misses.
    pip_whl="$(basename "$(ls "$tmp"/pip-*.whl | head -n 1)")"
    for _ in 1 2 3 4 5 6 7 8; do
        missing="$(timeout 300 docker run --rm --network none -v "$tmp:/w:ro" \
                -v "$REPO_ROOT/requirements.txt:/requirements.txt:ro" --entrypoint python3 "$base" \
                "/w/$pip_whl/pip" install --dry-run --ignore-installed --no-index --find-links /w \
                --no-cache-dir --disable-pip-version-check --break-system-packages \
                --root-user-action=ignore -r /requirements.txt 2>&1 \
            | sed -n 's/.*No matching distribution found for \([^ ]*\).*/\1/p' | head -n 1)" || true
        [ -n "$missing" ] || break
        say "the base's Python also needs $missing; downloading it"
        PIP_CONSTRAINT="" PIP_REQUIRE_VIRTUALENV="" timeout 900 "$PYTHON" -m pip download \
                --disable-pip-version-check --progress-bar off --quiet \
                --only-binary=:all: --implementation cp --python-version "$py_version" \
                "${platform_args[@]}" -d "$tmp" "$missing" \
            || die "'pip download $missing' failed."
    done
    [ -z "$missing" ] || die "the wheels for the base's Python are still incomplete ($missing)."
    printf '%s\n' "$stamp" >"$tmp/.stamp"
    find "$WHEEL_DIR" -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
    mv "$tmp"/* "$tmp"/.stamp "$WHEEL_DIR"/
    rm -rf "$tmp"
    trap - EXIT
fi

# ---------------------------------------------------------------- build
log="$CACHE_DIR/server-build.log"
args=(--force-rm --build-arg "BASE_IMAGE=$base" --label "org.codex.base-image=$base" "${labels[@]}"
      -t "$IMAGE" -f Dockerfile .)
say "building $IMAGE on $base (network none; log $log)"
if ! timeout 1200 docker build --network none "${args[@]}" >"$log" 2>&1; then
    if grep -qiE 'network (mode|none)|--network|networkmode' "$log"; then
        say "the engine refused --network none; building with its default network"
        timeout 1200 docker build "${args[@]}" >"$log" 2>&1 \
            || { tail -n 30 "$log" >&2; die "docker build failed (log $log)."; }
    else
        tail -n 30 "$log" >&2
        die "docker build failed (log $log)."
    fi
fi
# Untagged leftovers of earlier builds (install stages, replaced images).
for label in org.codex.server-stage=install org.codex.server=1; do
    timeout 120 docker image prune -f --filter "label=$label" >/dev/null 2>&1 || true
done

timeout 60 docker run --rm --network none "$IMAGE" python -m codex --config-docs >/dev/null \
    || die "the new image $IMAGE does not start 'python -m codex'."
size="$(timeout 30 docker image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null || echo 0)"
say "built $IMAGE (base $base, Python $py_version, $((size / 1000000)) MB) in $((SECONDS - start)) s"
