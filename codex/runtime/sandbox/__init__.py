"""Code that runs inside the sandbox. It is shipped as source text in the exec command
(``python3 -c``), so the sandbox image needs nothing of ours and never goes stale."""

from importlib.resources import files

SUPERVISOR_SOURCE = files(__package__).joinpath("supervisor.py").read_text("utf-8")
CHILD_SOURCE = files(__package__).joinpath("child.py").read_text("utf-8")
# The module `codex_display`, which the child makes from this text (see child.py).
DISPLAY_SOURCE = files(__package__).joinpath("codex_display.py").read_text("utf-8")
# The working directory's files in and out, run by the supervisor (see workdir.py).
WORKDIR_SOURCE = files(__package__).joinpath("workdir.py").read_text("utf-8")
