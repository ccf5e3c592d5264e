"""The supervisor's read of the job (codex/runtime/sandbox/supervisor.py) through a
real terminal in raw mode, as in the sandbox: a terminal hands over at most 4 KiB a
read, so a job with files (2 MiB of them: ~2.7 MB of JSON) comes in hundreds of
pieces and must arrive whole and in order."""

from __future__ import annotations

import hashlib
import os
import pty
import subprocess
import sys
import threading

from codex.runtime.sandbox import SUPERVISOR_SOURCE

# The supervisor's own functions, without its main(): the read, in raw mode.
READER = (
    SUPERVISOR_SOURCE.rsplit("\nmain()", 1)[0]
    + "\n_raw_terminal()\nimport hashlib, sys\n"
    + "job = _read_job()\nprint(len(job), hashlib.sha256(job).hexdigest(), flush=True)\n"
)


def test_a_job_of_megabytes_arrives_whole_through_the_terminal() -> None:
    payload = os.urandom(1 << 20).hex().encode() + b"\x00\x7f\r\n\x03\x04\x1a" * 100
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", READER], stdin=slave, stdout=subprocess.PIPE, close_fds=True
    )
    os.close(slave)

    def write() -> None:
        view = memoryview(b"%d\n" % len(payload) + payload)
        while view:
            view = view[os.write(master, view[:65536]) :]

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        os.close(master)
    size, digest = out.split()
    assert int(size) == len(payload)
    assert digest.decode() == hashlib.sha256(payload).hexdigest()
