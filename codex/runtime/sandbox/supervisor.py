# The first process of an execution, started on the execution's terminal as
#   python3 -I -S -c <this source> <child source> <user code>
# It runs the user's program in a child process and, when that child ends, writes one
# result record to the terminal, framed as an OSC sequence carrying a nonce that only
# this process and the server know. The server strips the record from the stream.
# Printed text can therefore never pass for a result: forging one would need the nonce,
# which lives in no file, no environment and no memory the user's program can read
# (this process makes itself non-dumpable, which hides its /proc files from the child).
import json
import os
import signal
import sys

RESULT_OSC = b"\x1b]6973;"


def main() -> None:
    child_source, user_code = sys.argv[1], sys.argv[2]
    env = dict(os.environ)
    nonce = env.pop("CODEX_NONCE", "").encode()
    rows = int(env.pop("CODEX_ROWS", "0") or 0)
    cols = int(env.pop("CODEX_COLS", "0") or 0)
    harden = env.pop("CODEX_HARDEN", "") == "1"
    if harden:
        _set_non_dumpable()
    saved_tty = _prepare_terminal(rows, cols)
    # Ctrl-C and friends are for the user's program; this process must outlive it.
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN):
        signal.signal(sig, signal.SIG_IGN)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN):
            signal.signal(sig, signal.SIG_DFL)
        os.close(read_end)
        os.set_inheritable(write_end, True)
        argv = [sys.executable, "-I", "-c", child_source, str(write_end), user_code]
        try:
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    os.set_blocking(read_end, False)
    try:
        # A grandchild may hold the pipe open, so read what is there and never wait.
        report = os.read(read_end, 65536)
    except OSError:
        report = b""
    record: dict[str, object] = {"exitCode": None, "signal": None, "error": None}
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
    _restore_terminal(saved_tty)
    payload = json.dumps(record).encode()
    os.write(1, RESULT_OSC + nonce + b";" + payload + b"\x07")
    code = record["exitCode"]
    os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"SIG{num}"


def _set_non_dumpable() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


def _prepare_terminal(rows: int, cols: int) -> object:
    try:
        import fcntl
        import struct
        import termios
    except ImportError:
        return None
    try:
        # A TTY `docker exec` starts at 0x0 until the engine is told a size; programs
        # that ask for their width must never see that, so set it before they start.
        current = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
        r, c = struct.unpack("HHHH", current)[:2]
        if (r == 0 or c == 0) and rows > 0 and cols > 0:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        return termios.tcgetattr(0)
    except OSError:
        return None


def _restore_terminal(saved: object) -> None:
    # The program may have left echo off (getpass killed) or output stopped (Ctrl-S);
    # the record must still get through.
    try:
        import termios

        if saved is not None:
            termios.tcsetattr(0, termios.TCSANOW, saved)  # type: ignore[arg-type]
        termios.tcflow(1, termios.TCOON)
    except Exception:
        pass


main()
