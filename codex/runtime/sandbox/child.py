# Runs the user's program as __main__ in a fresh interpreter:
#   python3 -I -c <this source> <code fd> <result fd> <display fd> <ack fd> <display source>
#           <stream token>
# The code pipe carries the job as JSON: {code, args, interactive, problems}.
# The display source becomes the module `codex_display` (images, the matplotlib
# backend, stderr marking: see that file) before the program is known.
# It starts before the program is known (a pooled sandbox keeps it warm) and reads
# the program from the code pipe, which the supervisor closes when it is all there.
# An uncaught exception prints its traceback as Python would, and its type, message
# and line go to the supervisor through the result pipe: facts from the interpreter,
# not text parsed from the program's output.
import json
import os
import sys
import types


def _run() -> None:
    code_fd, fd = int(sys.argv[1]), int(sys.argv[2])
    display = _display_module(int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6])
    chunks = []
    while True:
        chunk = os.read(code_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(code_fd)
    job = json.loads(b"".join(chunks).decode("utf-8"))
    source = job["code"]
    os.set_inheritable(fd, False)
    filename = "main.py"
    sys.argv = [filename, *job.get("args", [])]
    # As `python main.py` would: the job's files import from main.py's folder. No
    # bytecode is written there (it is not a file the program made).
    sys.path[0] = os.getcwd()
    sys.dont_write_bytecode = True
    for problem in job.get("problems", []):
        print("codex: could not write the file %s" % problem, file=sys.stderr)
    import linecache

    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType("__main__")
    module.__dict__["__file__"] = filename
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    try:
        code = compile(source, filename, "exec")
        exec(code, module.__dict__)
        display._at_exit()
    except SystemExit:
        display._at_exit()
        raise
    except BaseException as exc:  # the program's own error, reported like Python does
        if not job.get("interactive"):
            _report(fd, exc, filename)
            os._exit(1)
        _print_error(exc)  # as `python -i` does: the traceback, then the shell
    if job.get("interactive"):
        _shell(module, display)


def _shell(module: types.ModuleType, display: types.ModuleType) -> None:
    """The Python shell in the program's namespace, as `python -i` (IDLE's F5): it ends
    with exit() or end of file; each figure shows when its statement has run."""
    import code

    class Shell(code.InteractiveConsole):
        def runsource(self, source: str, filename: str = "<input>", symbol: str = "single") -> bool:
            more = super().runsource(source, filename, symbol)
            if not more:
                display._at_exit()
            return more

    sys.ps1, sys.ps2 = ">>> ", "... "
    Shell(module.__dict__, filename="<stdin>").interact(banner="", exitmsg="")


def _print_error(exc: BaseException) -> None:
    import traceback

    tb = exc.__traceback__
    tb = tb.tb_next if tb is not None else None  # hide this runner's own frame
    try:
        sys.stdout.flush()
        traceback.print_exception(type(exc), exc, tb)
        sys.stderr.flush()
    except Exception:
        pass


def _display_module(chan_fd: int, ack_fd: int, source: str, token: str) -> types.ModuleType:
    for own in (chan_fd, ack_fd):
        os.set_inheritable(own, False)  # a subprocess of the program gets neither
    module = types.ModuleType("codex_display")
    module.__dict__["__file__"] = "codex_display.py"
    exec(compile(source, "codex_display.py", "exec"), module.__dict__)
    sys.modules["codex_display"] = module
    module._install(chan_fd, ack_fd, token)
    return module


def _report(fd: int, exc: BaseException, filename: str) -> None:
    tb = exc.__traceback__
    tb = tb.tb_next if tb is not None else None  # hide this runner's own frame
    line = None
    walk = tb
    while walk is not None:
        if walk.tb_frame.f_code.co_filename == filename:
            line = walk.tb_lineno
        walk = walk.tb_next
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        line = exc.lineno
    _print_error(exc)
    try:
        message = str(exc)
    except Exception:
        message = ""
    record = {"type": type(exc).__name__, "message": message[:2000], "line": line}
    try:
        os.write(fd, json.dumps(record).encode())
    except OSError:
        pass


_run()
