"""The security corpus's shared set-up.

Importing ``tests.security.runner`` puts the canary secret (``CODEX_TEST_CANARY``) in
this process's environment at collection time, before any server starts: the server
runs in the test's own process (``tests.harness.running_app``), so the canary is in
the server's environment, and in that of every subprocess server a test starts. No
program in the corpus may ever print it.
"""

from __future__ import annotations

from tests.security import runner  # noqa: F401  (sets the canary)
