"""The programs the benchmarks run, in CodeX's sandbox and in terminado's local pty alike."""

from __future__ import annotations

HELLO = 'print("hi")'

# Keystroke echo: the kernel's terminal echoes each typed character while the program
# sits in read(); end of file (Ctrl-D at the start of a line) ends it.
ECHO_PROGRAM = """import sys
print("ready", flush=True)
while sys.stdin.read(1):
    pass
"""

LINE = 100  # bytes per line printed by the flood program: 99 "x" and a newline
LINES_PER_WRITE = 8192  # 819 200 bytes per write()


def flood_program(total_bytes: int) -> str:
    """Prints total_bytes (rounded down to whole lines) as fast as Python can."""
    lines = total_bytes // LINE
    full, rest = divmod(lines, LINES_PER_WRITE)
    return f"""import sys
line = "x" * {LINE - 1} + "\\n"
chunk = line * {LINES_PER_WRITE}
write = sys.stdout.write
for _ in range({full}):
    write(chunk)
write(line * {rest})
sys.stdout.flush()
"""


def flood_x_count(total_bytes: int) -> int:
    """How many "x" the flood program prints (the client counts them)."""
    return (total_bytes // LINE) * (LINE - 1)


def flood_wire_bytes(total_bytes: int) -> int:
    """Bytes that reach a terminal client: the terminal turns each \\n into \\r\\n."""
    return (total_bytes // LINE) * (LINE + 1)


# Detection: the client answers each prompt with the absolute time (this machine's
# clock) at which the program is to block again; latency = event at the client - that
# time. THINK_TIMES cycle: a quick answer, a pause, a long quiet spell.
DETECTION_PROMPTED = """import time
while True:
    t = float(input("> "))
    if t < 0:
        break
    time.sleep(max(0.0, t - time.time()))
"""
# Same, but the blocking read has no prompt: no output tells the server to look.
DETECTION_BARE = """import time
t = float(input("> "))
while t >= 0:
    time.sleep(max(0.0, t - time.time()))
    t = float(input())
"""
THINK_TIMES = (0.02, 0.3, 1.5)

# Concurrency: a learner's program waiting at its first prompt.
WAITING = 'name = input("Your name? ")\nprint("got", name)'
