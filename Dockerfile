# CodeX server image: `python -m codex` (Tornado, Socket.IO, terminal WebSockets),
# talking to a Docker engine through a socket that is mounted in.
#
#   With a registry:    docker build -t codex-server .            (FROM python:3.12-slim)
#   Without a registry: deploy/build-server.sh                    (FROM codex-base:bookworm,
#                       the wheels downloaded on the host into deploy/wheels/)
#
# The base needs python3 (3.11 or newer) and nothing else: pip runs from its own
# wheel, so Debian's python3 (made with debootstrap, see scripts/make-base.sh)
# works as well as python:*-slim. How to run it, and what the container needs to
# detect input exactly (the engine's PID namespace and CAP_SYS_PTRACE):
# docs/deployment.md.
ARG BASE_IMAGE=python:3.12-slim

# ---- stage 1: a virtualenv with requirements.txt, from wheels ------------------
# Wheels come from deploy/wheels/ when deploy/build-server.sh put a set there for
# this Python version; otherwise this stage downloads them (needs the network and
# pip in the base, as python:*-slim has). Neither the wheels nor pip reach the
# final image.
FROM ${BASE_IMAGE} AS install
LABEL org.codex.server-stage=install
COPY requirements.txt /tmp/requirements.txt
COPY deploy/wheels/ /tmp/wheels/
RUN set -eu; \
    ver="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
    if grep -q "^python=$ver " /tmp/wheels/.stamp 2>/dev/null \
            && ls /tmp/wheels/pip-*.whl >/dev/null 2>&1; then \
        echo "installing from the wheels downloaded on the host (Python $ver)"; \
    elif python3 -m pip --version >/dev/null 2>&1; then \
        echo "no wheels for Python $ver in deploy/wheels/: downloading them"; \
        rm -rf /tmp/wheels/*.whl; \
        python3 -m pip download --no-cache-dir --disable-pip-version-check --progress-bar off \
            --only-binary=:all: -d /tmp/wheels -r /tmp/requirements.txt pip; \
    else \
        echo "no wheels for Python $ver in deploy/wheels/ and no pip in the base:" \
             "build with deploy/build-server.sh" >&2; \
        exit 1; \
    fi; \
    python3 -m venv --without-pip /opt/codex; \
    pip_whl="$(ls /tmp/wheels/pip-*.whl | head -n 1)"; \
    /opt/codex/bin/python "$pip_whl/pip" install --no-index --find-links /tmp/wheels \
        --no-cache-dir --disable-pip-version-check --no-warn-script-location \
        --root-user-action=ignore -r /tmp/requirements.txt; \
    /opt/codex/bin/python -m compileall -q /opt/codex; \
    /opt/codex/bin/python -c "import tornado, socketio, docker, pyte, ptyprocess, limits"

# ---- stage 2: the server -------------------------------------------------------
FROM ${BASE_IMAGE}
COPY --from=install /opt/codex /opt/codex
WORKDIR /app
COPY codex/ /app/codex/
# The page at /; its browser files (static/vendor/) are there only if `make page`
# ran before the build. The API does not need them.
COPY static/ /app/static/
# An unprivileged user for the variant that does not need /proc access (see
# docs/deployment.md); bytecode compiled now, the root file system can be read-only.
RUN set -eu; \
    if ! getent group 10001 >/dev/null; then echo 'codex:x:10001:' >> /etc/group; fi; \
    if ! getent passwd 10001 >/dev/null; then \
        echo 'codex:x:10001:10001:CodeX server:/tmp:/usr/sbin/nologin' >> /etc/passwd; \
    fi; \
    /opt/codex/bin/python -m compileall -q /app/codex; \
    cd /app && /opt/codex/bin/python -c "import codex.app, codex.runtime.docker.runtime" \
    && /opt/codex/bin/python -m codex --help >/dev/null

ENV PATH=/opt/codex/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CODEX_HOST=0.0.0.0 \
    CODEX_PORT=8000

LABEL org.codex.server=1 \
      org.opencontainers.image.title="CodeX server" \
      org.opencontainers.image.description="Runs untrusted Python in Docker containers and streams it to browsers"

EXPOSE 8000
# Non-root by default. Access to the Docker socket and exact input detection need
# more: docs/deployment.md ("What the container needs"); docker-compose.yml runs it
# as root with the host's PID namespace and CAP_SYS_PTRACE.
USER 10001:10001

# Liveness only (the process answers HTTP); /readyz also checks the engine and the
# sandbox image. Follows CODEX_PORT; a port given with --port is not seen here.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CODEX_PORT', '8000'), timeout=4)"]

CMD ["python", "-m", "codex"]
