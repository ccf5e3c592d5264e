# The first process of an execution, started on the execution's terminal as
#   python3 -I -S -c <this source> <child source>
# It speaks a small protocol with the server over the terminal, framed as OSC
# sequences that carry a nonce only this process and the server know:
#   1. it starts the child interpreter at once (so a pooled sandbox has it warm),
#      puts the terminal in raw mode and says `ready`;
#   2. it reads the job, "<length>\n<json {code, rows, cols}>", restores the terminal,
#      sets its size and says `go` (only then may the server type into the terminal);
#   3. it hands the code to the child through a pipe, waits for it, and writes one
#      result record: {exitCode, signal, error}.
# Printed text can never pass for a record: forging one needs the nonce, which lives
# in no file, no environment and no memory the user's program can read (this process
# makes itself non-dumpable, which hides its /proc files from the child).
import json
import os
import signal
import sys

OSC = b"\x1b]6973;"
BEL = b"\x07"
SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN)


def main() -> None:
    child_source = sys.argv[1]
    env = dict(os.environ)
    nonce = env.pop("CODEX_NONCE", "").encode()
    if env.pop("CODEX_HARDEN", "") == "1":
        _set_non_dumpable()
    # Ctrl-C and friends are for the user's program; this process must outlive it.
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    code_r, code_w = os.pipe()
    result_r, result_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        os.close(code_w)
        os.close(result_r)
        os.set_inheritable(code_r, True)
        os.set_inheritable(result_w, True)
        argv = [sys.executable, "-I", "-c", child_source, str(code_r), str(result_w)]
        try:
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    os.close(code_r)
    os.close(result_w)
    saved = _raw_terminal()
    _say(nonce, b"ready")
    job = json.loads(_read_job().decode("utf-8"))
    _restore_terminal(saved)
    _set_size(int(job.get("rows") or 0), int(job.get("cols") or 0))
    _say(nonce, b"go")
    try:
        _write_all(code_w, job["code"].encode("utf-8"))
    except OSError:
        pass  # the child is gone already; its status says why
    os.close(code_w)
    _, status = os.waitpid(pid, 0)
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
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            os._exit(1)
        data += chunk
    return data


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
