#!/usr/bin/env bash
# Make the local Debian base image codex-base:bookworm without an image registry.
#
#   scripts/make-base.sh
#
# Used by sandbox-image/build.sh (its fallback when no registry answers) and by
# deploy/build-server.sh, so the two images share one base: debootstrap
# --variant=minbase --include=python3 from the Debian mirror in the apt sources,
# trimmed, then 'docker import'. A no-op when
# the image exists. Needs root (debootstrap); installs debootstrap with apt-get
# if it is missing.
#
# Environment:
#   CODEX_DEBIAN_MIRROR  mirror (default: from /etc/apt sources, else deb.debian.org)
#   CODEX_LOCAL_BASE     tag to make (default codex-base:bookworm, what the builds use)
#
# Exit codes: 0 made or present; 3 cannot be made here (not root, no debootstrap,
# mirror unreachable): the message says which.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEBIAN_SUITE=bookworm
LOCAL_BASE="${CODEX_LOCAL_BASE:-codex-base:$DEBIAN_SUITE}"
CACHE_DIR="$REPO_ROOT/.cache"

say() { printf 'make-base: %s\n' "$*"; }
cannot() { printf 'make-base: CANNOT: %s\n' "$*" >&2; exit 3; }

if timeout 30 docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    say "$LOCAL_BASE is present"
    exit 0
fi
timeout 15 docker info >/dev/null 2>&1 || cannot "no Docker engine answers 'docker info'."
[ "$(id -u)" -eq 0 ] || cannot "making $LOCAL_BASE needs debootstrap as root."

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/base-build.lock"
flock -w 3600 9 || cannot "timed out waiting for another base build."
if timeout 30 docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    say "$LOCAL_BASE was made meanwhile"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || cannot "debootstrap is missing and there is no apt-get."
    say "installing debootstrap with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get -o DPkg::Lock::Timeout=120 update -q >/dev/null \
        || cannot "'apt-get update' failed."
    timeout 600 apt-get -o DPkg::Lock::Timeout=120 install -y -q --no-install-recommends \
        debootstrap debian-archive-keyring >/dev/null || cannot "'apt-get install debootstrap' failed."
fi

mirror() {
    if [ -n "${CODEX_DEBIAN_MIRROR:-}" ]; then
        printf '%s\n' "$CODEX_DEBIAN_MIRROR"
        return
    fi
    local m="" f
    if [ -f /etc/apt/sources.list ]; then  # one-line format: deb [opts] URI SUITE ...
        m="$(awk -v suite="$DEBIAN_SUITE" '$1 == "deb" {
                for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp|file):/) break
                if (i < NF && $(i + 1) == suite) { print $i; exit } }' /etc/apt/sources.list)"
    fi
    if [ -z "$m" ]; then  # deb822 stanzas
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            m="$(awk -v suite="$DEBIAN_SUITE" '
                function flush() { if (uri != "" && deb && hit) { print uri; done = 1; exit }
                                   uri = ""; deb = 0; hit = 0 }
                /^[ \t]*$/ { flush(); next }
                tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
                tolower($1) == "uris:" { uri = $2 }
                tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
                END { if (!done) flush() }' "$f")"
            [ -n "$m" ] && break
        done
    fi
    printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

ROOTFS="$(mktemp -d "${TMPDIR:-/var/tmp}/codex-base.XXXXXX")"
cleanup() {
    awk -v root="$ROOTFS" 'index($2, root "/") == 1 { print $2 }' /proc/mounts 2>/dev/null \
        | sort -r | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    rm -rf --one-file-system "$ROOTFS" || true
}
trap cleanup EXIT

src="$(mirror)"
log="$CACHE_DIR/make-base-debootstrap.log"
say "debootstrap $DEBIAN_SUITE (minbase + python3) from $src; log $log"
if ! timeout 1800 debootstrap --variant=minbase --include=python3 \
        "$DEBIAN_SUITE" "$ROOTFS" "$src" >"$log" 2>&1; then
    tail -n 20 "$log" >&2 || true
    cannot "debootstrap failed (see $log); is the Debian mirror $src reachable?"
fi
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/*
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
say "importing as $LOCAL_BASE"
tar --numeric-owner --one-file-system --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -C "$ROOTFS" -c . \
    | timeout 600 docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$LOCAL_BASE" >/dev/null \
    || cannot "'docker import' of the root file system failed."
say "made $LOCAL_BASE"
