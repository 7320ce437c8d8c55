"""Deterministic names: orchestration instance ids for jobs and tasks, container group names per attempt.

Instance ids follow the Durable rules (no '/', '\\', '?', '#', no control characters, at most 256
characters, not starting with '@'). Group names follow ACI's (lowercase letters, digits and single '-',
at most 63 characters); a hash of the full identity keeps them unique when the readable part is cut.
"""

from __future__ import annotations

import hashlib
import re
import secrets

TENANT_RULE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,39}$")
GROUP_NAME_MAX = 63
_HASH_CHARS = 10


def validate_tenant_id(tenant: str) -> str | None:
    """None when valid, else what to fix."""
    if not isinstance(tenant, str) or not TENANT_RULE.fullmatch(tenant):  # match would accept "name\n"
        return "must be 1-40 lowercase letters, digits or single '-', starting and ending with a letter or digit"
    return None


def job_instance_id(tenant: str, job_id: str) -> str:
    return f"job:{tenant}:{job_id}"


def task_instance_id(tenant: str, job_id: str, task_id: str) -> str:
    return f"task:{tenant}:{job_id}:{task_id}"


def parse_task_instance_id(instance_id: str) -> tuple[str, str, str] | None:
    parts = instance_id.split(":")
    if len(parts) != 4 or parts[0] != "task" or not all(parts[1:]):
        return None
    return parts[1], parts[2], parts[3]


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-")


def container_group_name(tenant: str, job_id: str, task_id: str, attempt: int) -> str:
    """`<tenant>-<job>-<task>-a<attempt>-<hash>`, cut to 63 characters; the hash covers the full identity."""
    identity = "\x1f".join((tenant, job_id, task_id, str(attempt)))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:_HASH_CHARS]
    suffix = f"-a{attempt}-{digest}"
    readable = _slug(f"{tenant}-{job_id}-{task_id}")[: GROUP_NAME_MAX - len(suffix)].strip("-")
    return f"{readable}{suffix}" if readable else suffix.lstrip("-")


def new_job_id() -> str:
    """A fresh job id for submissions without one (lowercase, sortable by nothing, 20 characters)."""
    return "j" + secrets.token_hex(10)[:19]
