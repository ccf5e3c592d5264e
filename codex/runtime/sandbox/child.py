# Runs the user's program as __main__ in a fresh interpreter:
#   python3 -I -c <this source> <code fd> <result fd> <display fd> <ack fd> <display source>
#           <stream token>
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
    source = b"".join(chunks).decode("utf-8")
    os.set_inheritable(fd, False)
    filename = "main.py"
    sys.argv = [filename]
    del sys.path[0]  # '' from -c: the working directory is the user's, not a module root
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
        _report(fd, exc, filename)
        os._exit(1)


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
    import traceback

    try:
        sys.stdout.flush()
    except Exception:
        pass
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
    try:
        traceback.print_exception(type(exc), exc, tb)
        sys.stderr.flush()
    except Exception:
        pass
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
