# The first process of an execution, started on the execution's terminal as
#   python3 -I -S -c <this source> <child source> <display source> <workdir source>
# It speaks a small protocol with the server over the terminal, framed as OSC
# sequences that carry a nonce only this process and the server know:
#   1. it starts the child interpreter at once (so a pooled sandbox has it warm),
#      puts the terminal in raw mode and says `ready`;
#   2. it reads the job, "<length>\n<json {code, rows, cols}>", restores the terminal,
#      sets its size and says `go` (only then may the server type into the terminal);
#   3. it writes the job's files into the working directory and notes what is there
#      (workdir.py), hands the code to the child through a pipe and, while it runs, serves
#      its display channel: each image becomes a `display:` record, written into the
#      terminal before the child is acknowledged (so exactly where the child's text
#      puts it); the child marks its stderr writes itself, with the stream token;
#   4. once the child has ended, it sends the files the program created or changed
#      (within the job's bounds), then one result record: {exitCode, signal, error}.
# Printed text can never pass for a record: forging one needs the nonce, which lives
# in no file, no environment and no memory the user's program can read (this process
# makes itself non-dumpable, which hides its /proc files from the child).
import base64
import json
import os
import select
import signal
import sys

OSC = b"\x1b]6973;"
BEL = b"\x07"
SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN)


def main() -> None:
    child_source, display_source = sys.argv[1], sys.argv[2]
    env = dict(os.environ)
    nonce = env.pop("CODEX_NONCE", "").encode()
    if env.pop("CODEX_HARDEN", "") == "1":
        _set_non_dumpable()
    # Ctrl-C and friends are for the user's program; this process must outlive it.
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    # The program's own folder, below HOME: what libraries keep in HOME (matplotlib's
    # font cache, ~/.python_history) is not a file the program left.
    os.makedirs("work", mode=0o700, exist_ok=True)
    os.chdir("work")
    code_r, code_w = os.pipe()
    result_r, result_w = os.pipe()
    chan_r, chan_w = os.pipe()  # the child's images and stderr marks
    ack_r, ack_w = os.pipe()  # one byte per message, once its record is written
    wake_r, wake_w = os.pipe()  # SIGCHLD wakes the serving loop
    pid = os.fork()
    if pid == 0:
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        for own in (code_w, result_r, chan_r, ack_w, wake_r, wake_w):
            os.close(own)
        for fd in (code_r, result_w, chan_w, ack_r):
            os.set_inheritable(fd, True)
        fds = [str(fd) for fd in (code_r, result_w, chan_w, ack_r)]
        # The token of the stream switches (codex.runtime.protocol.stream_token).
        token = _sha256(b"codex-stream:" + nonce).hexdigest()[:32]
        argv = [sys.executable, "-I", "-c", child_source, *fds, display_source, token]
        try:
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    for theirs in (code_r, result_w, chan_w, ack_r):
        os.close(theirs)
    saved = _raw_terminal()
    _say(nonce, b"ready")
    # Compiled while the job is on its way, not before `ready` (a cold start waits).
    workdir: dict = {}
    exec(compile(sys.argv[3], "workdir.py", "exec"), workdir)
    job = json.loads(_read_job().decode("utf-8"))
    _restore_terminal(saved)
    _set_size(int(job.get("rows") or 0), int(job.get("cols") or 0))
    problems = workdir["write_files"](job.get("files") or [])
    collect = job.get("collect") or [0, 0, 0]
    before = workdir["snapshot"]() if collect[0] > 0 else None
    _say(nonce, b"go")
    run = {"code": job["code"], "args": job.get("args") or [], "problems": problems}
    run["interactive"] = bool(job.get("interactive"))
    try:
        _write_all(code_w, json.dumps(run).encode("utf-8"))
    except OSError:
        pass  # the child is gone already; its status says why
    os.close(code_w)
    status = Channel(nonce, chan_r, ack_w, int(job.get("maxImage") or 0)).serve(pid, wake_r, wake_w)
    if before is not None:
        _send_files(nonce, workdir["collect"](before, *collect))
    os.set_blocking(result_r, False)
    try:
        # A grandchild may hold the pipe open, so read what is there and never wait.
        report = os.read(result_r, 65536)
    except OSError:
        report = b""
    record = {"exitCode": None, "signal": None, "error": None}
    if os.WIFSIGNALED(status):
        num = os.WTERMSIG(status)
        record["signal"] = _signal_name(num)
        record["exitCode"] = 128 + num
    else:
        record["exitCode"] = os.WEXITSTATUS(status)
    if report:
        try:
            record["error"] = json.loads(report.decode("utf-8", "replace"))
        except ValueError:
            pass
    # The program may have left echo off (getpass killed) or output stopped (Ctrl-S);
    # the record must still get through.
    _restore_terminal(saved)
    _say(nonce, json.dumps(record).encode())
    code = record["exitCode"]
    os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


class Channel:
    """The child's display messages, "<kind> <length>\n<payload>", served until the
    child ends. Reads never block (a grandchild may hold the pipe), and an image over
    the job's bound is counted and skipped, never buffered."""

    def __init__(self, nonce: bytes, fd: int, ack: int, max_image: int) -> None:
        self.nonce, self.fd, self.ack, self.max_image = nonce, fd, ack, max_image
        self.buf = b""
        self.need = -1  # payload bytes the current message still needs; -1: a header
        self.kind = b""
        self.size = 0

    def serve(self, pid: int, wake_r: int, wake_w: int) -> int:
        os.set_blocking(self.fd, False)
        os.set_blocking(wake_w, False)
        os.set_blocking(self.ack, False)  # a child that never reads acks cannot stall us
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        watched = [self.fd, wake_r]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            ready, _, _ = select.select(watched, [], [])
            if wake_r in ready:
                os.read(wake_r, 256)
            if self.fd in ready:
                try:
                    data = os.read(self.fd, 1 << 20)
                except OSError:
                    data = b""
                if not data:
                    watched = [wake_r]  # closed: only the child's end is left to see
                self._take(data)

    def _take(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need < 0:
                end = self.buf.find(b"\n", 0, 64)
                if end < 0:
                    if len(self.buf) >= 64:
                        self.buf = b""  # not a header of ours: the child's fault
                    return
                head, self.buf = self.buf[:end].split(b" "), self.buf[end + 1 :]
                if len(head) != 2 or not head[1].isdigit():
                    continue
                self.kind, self.size = head[0], int(head[1])
                self.need = self.size
            if self.size > self.max_image + 4096:
                take = min(self.need, len(self.buf))  # over the bound: skipped as it comes
                self.buf, self.need = self.buf[take:], self.need - take
                if self.need:
                    return
                self._record(b"")
            elif len(self.buf) < self.need:
                return
            else:
                payload, self.buf = self.buf[: self.need], self.buf[self.need :]
                self._record(payload)
            self.need = -1

    def _record(self, payload: bytes) -> None:
        if self.kind == b"d":
            _say(self.nonce, _display_body(payload, self.size))
        try:
            os.write(self.ack, b"k")
        except OSError:
            pass


def _send_files(nonce: bytes, collected: tuple) -> None:
    """Each file as a record, then the end of the list (see codex.runtime.job)."""
    files, unlisted = collected
    omitted = unlisted
    for name, size, data, why in files:
        header = {"name": name, "size": size}
        if why:
            header["omitted"] = why
            omitted += 1
        encoded = json.dumps(header, ensure_ascii=True).encode()
        _say(nonce, b"file:%d:" % len(encoded) + encoded + base64.b64encode(data))
    end = {"collected": len(files) - (omitted - unlisted), "omitted": omitted}
    _say(nonce, b"files:" + json.dumps(end).encode())


def _display_body(payload: bytes, size: int) -> bytes:
    """display:<header length>:<header JSON><base64 image>; the header says the
    image's size even when the image itself was too large to pass."""
    head, _, image = payload.partition(b"\n")
    try:
        header = json.loads(head.decode("utf-8"))
    except ValueError:
        header = {}
    if not isinstance(header, dict):
        header = {}
    header = {"mime": str(header.get("mime", ""))[:40], "text": str(header.get("text", ""))[:200]}
    header["bytes"] = len(image) if payload else max(0, size - len(head) - 1)
    # ASCII JSON: no byte of it is a newline the terminal would rewrite, nor a BEL.
    encoded = json.dumps(header, ensure_ascii=True).encode()
    return b"display:%d:" % len(encoded) + encoded + base64.b64encode(image)


def _say(nonce: bytes, payload: bytes) -> None:
    _write_all(1, OSC + nonce + b";" + payload + BEL)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_job() -> bytes:
    header = b""
    while not header.endswith(b"\n"):
        chunk = os.read(0, 1)
        if not chunk:
            os._exit(1)
        header += chunk
    size = int(header)
    # A terminal hands over at most 4 KiB a read: `bytes +=` would copy the whole
    # job each time (quadratic: ~1 s for the 2.7 MB of 2 MiB of files), and asking
    # for all that is left would allocate that much each time.
    data = bytearray()
    while len(data) < size:
        chunk = os.read(0, min(size - len(data), 1 << 16))
        if not chunk:
            os._exit(1)
        data += chunk
    return bytes(data)


def _sha256(data: bytes):  # type: ignore[no-untyped-def]
    # The builtin module: hashlib would load OpenSSL (~10 ms) on every cold start.
    try:
        from _sha256 import sha256  # Python 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # Python 3.12 and later
        except ImportError:
            from hashlib import sha256
    return sha256(data)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return "SIG%d" % num


def _set_non_dumpable() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


def _raw_terminal() -> object:
    """Raw mode while the job arrives: no echo, no line editing, bytes as sent."""
    try:
        import termios

        saved = termios.tcgetattr(0)
        mode = termios.tcgetattr(0)
        mode[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON | termios.ISTRIP)
        mode[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(0, termios.TCSANOW, mode)
        return saved
    except Exception:
        return None


def _restore_terminal(saved: object) -> None:
    try:
        import termios

        if saved is not None:
            termios.tcsetattr(0, termios.TCSANOW, saved)  # type: ignore[arg-type]
        termios.tcflow(1, termios.TCOON)
    except Exception:
        pass


def _set_size(rows: int, cols: int) -> None:
    # A TTY `docker exec` starts at 0x0 until the engine is told a size; programs
    # that ask for their width must never see that, so set it before they start.
    if rows <= 0 or cols <= 0:
        return
    try:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except Exception:
        pass


main()
