"""The public input-detection corpus: programs, the answers a client sends, and the
exact `input_required` events each must produce (their prompts, in order).

`password` lists the expected `password` flag per event where it matters. Negative
cases print prompt-like text but never block reading the terminal: zero events.
`prompts_either` gives the two exact outcomes of a case whose text depends on a race
a real terminal has too (which comes first, the echo of type-ahead or the prompt).
"""

from __future__ import annotations

from typing import Any

CASES: list[dict[str, Any]] = [
    # -- reads that block on the terminal -------------------------------------------------
    {
        "name": "input",
        "code": 'x = input("Name? ")\nprint("hi", x)\n',
        "answers": ["Bob"],
        "prompts": ["Name? "],
    },
    {
        "name": "input_without_prompt",
        "code": "x = input()\nprint(x[::-1])\n",
        "answers": ["abc"],
        "prompts": [""],
    },
    {
        "name": "three_questions",
        "code": 'for q in ("a? ", "b? ", "c? "):\n    input(q)\n',
        "answers": ["1", "2", "3"],
        "prompts": ["a? ", "b? ", "c? "],
    },
    {
        "name": "sum_loop",
        "code": "t = 0\nfor i in range(3):\n    t += int(input(f'n{i}: '))\nprint('sum', t)\n",
        "answers": ["1", "2", "3"],
        "prompts": ["n0: ", "n1: ", "n2: "],
        "output_has": "sum 6",
    },
    {
        "name": "stdin_readline",
        "code": 'import sys\nsys.stdout.write("> ")\nsys.stdout.flush()\nline = sys.stdin.readline()\n'
        'print("got", line.strip())\n',
        "answers": ["hello"],
        "prompts": ["> "],
        "output_has": "got hello",
    },
    {
        "name": "stdin_read_one_char",
        "code": 'import sys\nprint("Press a key: ", end="", flush=True)\nc = sys.stdin.read(1)\n'
        'print("key", repr(c))\n',
        "answers": ["x"],
        "prompts": ["Press a key: "],
        "output_has": "key 'x'",
    },
    {
        "name": "os_read",
        "code": 'import os\nos.write(1, b"raw: ")\ndata = os.read(0, 100)\nprint(len(data))\n',
        "answers": ["abcd"],
        "prompts": ["raw: "],
        "output_has": "5",
    },
    {
        "name": "getpass",
        "code": 'import getpass\npw = getpass.getpass("Password: ")\nprint("length", len(pw))\n',
        "answers": ["s3cret"],
        "prompts": ["Password: "],
        "password": [True],
        "output_has": "length 6",
        "output_lacks": "s3cret",
    },
    {
        "name": "getpass_then_input",
        "code": 'import getpass\ngetpass.getpass("PIN: ")\ninput("Name: ")\n',
        "answers": ["1234", "Ann"],
        "prompts": ["PIN: ", "Name: "],
        "password": [True, False],
    },
    {
        "name": "subprocess_head",
        "code": 'import subprocess\nprint("child reads: ", end="", flush=True)\n'
        'subprocess.run(["head", "-n1"])\n',
        "answers": ["a line"],
        "prompts": ["child reads: "],
        "output_has": "a line",
    },
    {
        "name": "child_python_input",
        "code": "import subprocess, sys\n"
        'subprocess.run([sys.executable, "-c", "print(input(\'child? \') * 2)"])\n',
        "answers": ["ab"],
        "prompts": ["child? "],
        "output_has": "abab",
    },
    {
        "name": "thread_input",
        "code": "import threading\nout = []\n"
        't = threading.Thread(target=lambda: out.append(input("thread? ")))\n'
        't.start()\nt.join()\nprint("got", out[0])\n',
        "answers": ["tt"],
        "prompts": ["thread? "],
        "output_has": "got tt",
    },
    {
        "name": "for_line_in_stdin",
        "code": 'import sys\nprint("lines:", flush=True)\nfor line in sys.stdin:\n'
        '    print("got", line.strip())\n    break\n',
        "answers": ["first"],
        "prompts": [""],
        "output_has": "got first",
    },
    {
        "name": "select_on_stdin",
        "code": 'import select, sys\nprint("select> ", end="", flush=True)\n'
        'select.select([sys.stdin], [], [])\nprint("ready", sys.stdin.readline().strip())\n',
        "answers": ["go"],
        "prompts": ["select> "],
        "output_has": "ready go",
    },
    {
        "name": "poll_on_stdin",
        "code": "import select, sys\np = select.poll()\np.register(0, select.POLLIN)\n"
        'print("poll> ", end="", flush=True)\np.poll()\nprint("ready", input())\n',
        "answers": ["go"],
        "prompts": ["poll> "],
        "output_has": "ready go",
    },
    {
        "name": "asyncio_reader",
        "code": "import asyncio, sys\n"
        "async def main():\n"
        "    loop = asyncio.get_running_loop()\n"
        "    fut = loop.create_future()\n"
        "    loop.add_reader(0, lambda: fut.done() or fut.set_result(sys.stdin.readline()))\n"
        '    print("async? ", end="", flush=True)\n'
        '    print("got", (await fut).strip())\n'
        "asyncio.run(main())\n",
        "answers": ["yes"],
        "prompts": ["async? "],
        "output_has": "got yes",
    },
    {
        "name": "colored_prompt",
        "code": 'input("\\x1b[1;32mColor?\\x1b[0m ")\n',
        "answers": ["red"],
        "prompts": ["Color? "],
    },
    {
        "name": "wide_char_prompt",
        "code": 'input("名前は? ")\n',
        "answers": ["太郎"],
        "prompts": ["名前は? "],
    },
    {
        "name": "prompt_after_carriage_return",
        "code": 'print("loading...", end="\\r", flush=True)\ninput("Ready? ")\n',
        "answers": ["y"],
        "prompts": ["Ready? "],
    },
    {
        "name": "multi_line_prompt",
        "code": 'input("Line one\\nLine two> ")\n',
        "answers": ["z"],
        "prompts": ["Line two> "],
    },
    {
        "name": "prompt_after_much_output",
        "code": 'for i in range(3000):\n    print("row", i)\ninput("Last? ")\n',
        "answers": ["done"],
        "prompts": ["Last? "],
    },
    {
        "name": "partial_type_ahead",
        "code": 'a = input("a? ")\nb = input("b? ")\nprint(a + b)\n',
        # When the terminal echoed the typed-ahead "1" before the program printed "a? ",
        # the cursor's line shows both prompts, as a real terminal would; when the
        # program was first (a loaded machine), "a? 1" is a line of its own.
        "stdin": "1\n",
        "answers": ["2"],
        "prompts": ["a? b? "],
        "prompts_either": ["b? "],
        "output_has": "12",
    },
    # -- never a prompt ---------------------------------------------------------------------
    {
        "name": "prompt_then_sleep",
        "code": 'import time\nprint("Enter: ", end="", flush=True)\ntime.sleep(1.5)\n',
        "answers": [],
        "prompts": [],
    },
    {
        "name": "prompt_then_compute",
        "code": 'import time\nprint("Answer? ", end="", flush=True)\nend = time.time() + 1\n'
        "while time.time() < end:\n    pass\n",
        "answers": [],
        "prompts": [],
    },
    {
        "name": "wait_on_child_not_reading",
        "code": 'import subprocess\nprint("Input: ", end="", flush=True)\nsubprocess.run(["sleep", "1"])\n',
        "answers": [],
        "prompts": [],
    },
    {
        "name": "read_a_pipe",
        "code": 'import os, threading\nr, w = os.pipe()\nprint("Value? ", end="", flush=True)\n'
        'threading.Timer(1, lambda: os.write(w, b"x")).start()\nos.read(r, 1)\n',
        "answers": [],
        "prompts": [],
    },
    {
        "name": "read_a_socket",
        "code": 'import socket, threading\na, b = socket.socketpair()\nprint("> ", end="", flush=True)\n'
        'threading.Timer(1, lambda: b.send(b"x")).start()\na.recv(1)\n',
        "answers": [],
        "prompts": [],
    },
    {
        "name": "thread_event_wait",
        "code": 'import threading\nprint("Continue? [y/n] ", end="", flush=True)\n'
        "threading.Event().wait(1.2)\n",
        "answers": [],
        "prompts": [],
    },
    {
        "name": "type_ahead",
        "code": 'n = int(input("Number? "))\nprint(n * 2)\n',
        "stdin": "21\n",
        "answers": [],
        "prompts": [],
        "output_has": "42",
    },
    {
        "name": "type_ahead_three",
        "code": 'for q in "xyz":\n    input(q + "? ")\nprint("done")\n',
        "stdin": "1\n2\n3\n",
        "answers": [],
        "prompts": [],
        "output_has": "done",
    },
]
