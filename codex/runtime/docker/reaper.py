"""Removing containers: one at once, those a failed removal left, a stopped
instance's, those of servers that are gone, those of peers whose lease ran out.

Everything here blocks on the engine: callers run it in the runtime's thread pool.
A removal that fails is remembered and retried once the engine answers again, so a
restarting engine leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
from codex.runtime.docker.engine import short
from codex.runtime.docker.labels import (
    LABEL_CLUSTER,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_OWNER,
)
from codex.runtime.docker.owner import owner_gone

log = logging.getLogger(__name__)


class Reaper:
    def __init__(
        self,
        api: Callable[[], docker.APIClient],
        instance_name: str,
        on_gone: Callable[[str], None],
    ) -> None:
        self.api = api  # called each time: the runtime drops a client that failed
        self.instance_name = instance_name
        self.on_gone = on_gone  # a container of ours is gone: its uid may be reused
        self.unremoved: set[str] = set()  # containers a failed removal left behind

    def remove_now(self, container_id: str) -> bool:
        """Remove one of our containers with force; True once it is gone."""
        gone = remove_quietly(self.api(), container_id)
        if gone:
            self.on_gone(container_id)
        return gone

    def retry_unremoved(self) -> None:
        for container_id in list(self.unremoved):
            if self.remove_now(container_id):
                self.unremoved.discard(container_id)

    def sweep(self, instance: str | None = None) -> int:
        """Remove one instance's containers, or (None) those whose server is gone."""
        label = f"{LABEL_INSTANCE}={instance}" if instance else LABEL_MANAGED
        api = self.api()
        found = api.containers(all=True, filters={"label": label})
        if instance is None:
            name = self.instance_name
            found = [
                c
                for c in found
                if owner_gone(c.get("Labels", {}).get(LABEL_OWNER))
                or (name and c.get("Labels", {}).get(LABEL_NAME) == name)
            ]
        return remove_all(api, found)

    def reap_peers(self, cluster: str, live: set[str]) -> int:
        """Remove the cluster's containers whose instance is not in `live`."""
        api = self.api()
        found = api.containers(all=True, filters={"label": f"{LABEL_CLUSTER}={cluster}"})
        dead = [c for c in found if c.get("Labels", {}).get(LABEL_INSTANCE) not in live]
        return remove_all(api, dead)


def remove_all(api: docker.APIClient, found: list[dict[str, Any]]) -> int:
    for c in found:
        remove_quietly(api, c["Id"])
    return len(found)


def remove_quietly(api: docker.APIClient, container_id: str) -> bool:
    """Remove a container with force; True once it is gone (or going)."""
    try:
        api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # removal already in progress: someone else has it
            return True
        log.warning("could not remove container %s: %s", container_id[:12], short(exc))
        return False
    except Exception as exc:
        log.warning("could not remove container %s: %s", container_id[:12], short(exc))
        return False
    return True
