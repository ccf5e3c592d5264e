"""How the server marks and names its containers.

The labels are what later decisions about a container read: whose it is (the
instance, its owner's identity, its cluster), which uid it runs as, which session it
served. Docker cannot change them after creation; only the name can follow a pooled
container to the session that takes it.
"""

from __future__ import annotations

import hashlib

import docker

LABEL_MANAGED = "org.codex.managed"
LABEL_INSTANCE = "org.codex.instance"
LABEL_SESSION = "org.codex.session"
LABEL_OWNER = "org.codex.owner"
LABEL_CLUSTER = "org.codex.cluster.directory"
LABEL_NAME = "org.codex.instance-name"
LABEL_UID = "org.codex.uid"


def cluster_label(redis_url: str) -> str:
    """Instances sharing one Redis form a cluster; they may reap each other's
    sandboxes once a lease runs out, and never anyone else's. "" without Redis."""
    return hashlib.sha256(redis_url.encode()).hexdigest()[:12] if redis_url else ""


def container_name(session_id: str) -> str:
    return f"codex-{session_id}"


def container_labels(
    instance: str,
    owner: str,
    uid: int,
    cluster: str,
    instance_name: str,
    session_id: str | None,
) -> dict[str, str]:
    labels = {
        LABEL_MANAGED: "1",
        LABEL_INSTANCE: instance,
        LABEL_OWNER: owner,
        LABEL_UID: str(uid),
    }
    if cluster:
        labels[LABEL_CLUSTER] = cluster
    if instance_name:
        labels[LABEL_NAME] = instance_name
    if session_id is not None:
        labels[LABEL_SESSION] = session_id
    return labels


def labelled_uids(api: docker.APIClient) -> list[int]:
    """The uids our containers on this engine run as, any server's."""
    found = api.containers(all=True, filters={"label": LABEL_MANAGED})
    uids = [c.get("Labels", {}).get(LABEL_UID, "") for c in found]
    return [int(u) for u in uids if u.isdigit()]
