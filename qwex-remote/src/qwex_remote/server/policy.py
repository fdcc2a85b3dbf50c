"""What a remote submission may ask for: `[tool.qwex.server]` decides (see `settings`).

`check` returns the backend the job runs on, or raises `Refused` naming the
rule (`server.backends`, `server.images`...) so the 403 tells the user which key
an administrator would have to change.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from qwex_core.models import parse_memory

if TYPE_CHECKING:
    from qwex_remote.server.schemas import JobSubmission
    from qwex_remote.server.settings import ServerSettings

CONTAINER_BACKENDS = frozenset({"docker", "k8s"})


class Refused(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"refused by the server policy ({rule}): {message}")
        self.rule = rule


def check(
    submission: JobSubmission,
    policy: ServerSettings,
    installed: set[str],
    profile_backend: Callable[[str], str] | None = None,
) -> str:
    """The backend `submission` runs on; `profile_backend(name)` is a profile's backend."""
    profile = submission.profile
    if profile is not None and profile not in policy.profiles:
        allowed = ", ".join(policy.profiles) or "none"
        raise Refused("server.profiles", f"profile {profile!r} is not allowed; allowed: {allowed}")
    backend = submission.backend
    if backend is None and profile is not None and profile_backend is not None:
        backend = profile_backend(profile)
    backend = backend or policy.default_backend
    if backend not in policy.backends:
        allowed = ", ".join(policy.backends) or "none"
        raise Refused("server.backends", f"backend {backend!r} is not allowed; allowed: {allowed}")
    if backend not in installed:
        raise Refused("server.backends", f"backend {backend!r} is not installed on the server")
    if submission.image is not None and not any(
        fnmatch.fnmatchcase(submission.image, pattern) for pattern in policy.images
    ):
        raise Refused(
            "server.images",
            f"image {submission.image!r} matches none of {', '.join(policy.images) or 'nothing'}",
        )
    for mount in submission.mounts:
        allowed_source(mount.source, policy.mounts)
    if submission.network is not None and submission.network not in policy.networks:
        allowed = ", ".join(policy.networks) or "only the default"
        raise Refused(
            "server.networks", f"network {submission.network!r} is not allowed ({allowed})"
        )
    _limits(submission, policy)
    return backend


def _limits(submission: JobSubmission, policy: ServerSettings) -> None:
    asked = submission.resources
    if policy.max_cpu is not None and (asked.cpu or 0) > policy.max_cpu:
        raise Refused("server.max_cpu", f"{asked.cpu} CPUs asked, at most {policy.max_cpu}")
    if policy.max_gpu is not None and (asked.gpu or 0) > policy.max_gpu:
        raise Refused("server.max_gpu", f"{asked.gpu} GPUs asked, at most {policy.max_gpu}")
    asked_bytes = asked.memory_bytes
    most = policy.max_memory
    if most is not None and asked_bytes is not None and asked_bytes > parse_memory(most):
        raise Refused("server.max_memory", f"{asked.memory} of memory asked, at most {most}")


def allowed_source(source: str, roots: list[str]) -> str:
    """Where the mount source `source` leads (links resolved), when that is inside one of
    the allowed host directories `roots` (resolved too); else `Refused` (server.mounts).

    Judged by the resolved path, not the text: a link in an allowed folder may lead
    anywhere. The worker asks again when the job starts and binds the path returned, so a
    link planted between submit and start is refused too."""
    resolved = os.path.realpath(source) if os.path.isabs(source) else None
    if resolved is None or not any(_inside(resolved, os.path.realpath(r)) for r in roots):
        allowed = ", ".join(roots) or "none"
        moved = resolved is not None and resolved != os.path.normpath(source)
        leads = f" (which leads to {resolved!r})" if moved else ""
        raise Refused(
            "server.mounts",
            f"mounting {source!r}{leads} is not allowed (allowed host directories: {allowed})",
        )
    return resolved


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
