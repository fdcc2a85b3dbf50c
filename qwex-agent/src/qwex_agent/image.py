"""The agent image: `FROM scratch` plus the agent bundle at /qwex (`qwex agent image`).

Kubernetes has no bind mount of a host folder, so the agent reaches a pod through an init
container of this image that copies /qwex into an emptyDir (`qwex_core.agent.main.COPY_VERB`).
Built offline by the daemon's classic builder from a context holding only the bundle; the
bundle's content digest is a label, so building again with the same bundle is a no-op that
keeps the image id (and `.ci/k8s/cluster.sh load` then skips the copy into the node).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qwex_core
from qwex_core.agent.main import COPY_VERB
from qwex_core.errors import BackendError

from qwex_agent.daemon import api_message
from qwex_agent.locate import LAUNCHER, MOUNT, Agent

DIGEST_LABEL = "qwex.agent.digest"
VERSION_LABEL = "qwex.agent.version"
INSTALL_DIR = "/qwex-install"
"""Where the default command of the image copies the bundle (the init container's emptyDir)."""


@dataclass(frozen=True)
class AgentImage:
    tag: str
    id: str
    platform: str
    digest: str
    built: bool
    """False when an image with this tag already held the same bundle."""


def bundle_digest(root: Path) -> str:
    """sha256 over every file's relative path, mode and content: the bundle's identity."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if not p.is_dir()):
        rel = path.relative_to(root).as_posix()
        digest.update(f"{rel}\0{path.lstat().st_mode:o}\0".encode())
        digest.update(path.read_bytes() if not path.is_symlink() else str(path.readlink()).encode())
    return digest.hexdigest()


def dockerfile(agent: Agent, digest: str) -> str:
    command = json.dumps([f"{MOUNT}/{LAUNCHER}", *COPY_VERB, INSTALL_DIR])
    labels = {
        VERSION_LABEL: qwex_core.__version__,
        DIGEST_LABEL: digest,
        "org.opencontainers.image.title": "qwex agent",
        "org.opencontainers.image.description": (
            f"the self-contained qwex agent for {agent.platform}, at {MOUNT}"
        ),
    }
    label_line = " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
    return f"FROM scratch\nCOPY qwex {MOUNT}\nLABEL {label_line}\nCMD {command}\n"


def context(agent: Agent, digest: str) -> bytes:
    """The build context: the Dockerfile and the bundle as `qwex/`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        text = dockerfile(agent, digest).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(text), 0o644
        tar.addfile(info, io.BytesIO(text))
        tar.add(agent.path, arcname="qwex")
    return buf.getvalue()


def build_image(api: Any, agent: Agent, tag: str, *, force: bool = False) -> AgentImage:
    """Build (or find up to date) the agent image `tag` for `agent` on the daemon `api`."""
    from docker.errors import APIError, ImageNotFound

    digest = bundle_digest(agent.path)
    platform = str(agent.platform)
    if not force:
        try:
            attrs = api.inspect_image(tag)
        except ImageNotFound:
            attrs = None
        except APIError as exc:  # an invalid reference, most often
            raise BackendError(f"cannot build the agent image {tag}: {api_message(exc)}") from None
        labels = ((attrs or {}).get("Config") or {}).get("Labels") or {}
        if attrs and labels.get(DIGEST_LABEL) == digest:
            return AgentImage(tag, attrs["Id"], platform, digest, built=False)
    try:
        stream = api.build(
            fileobj=io.BytesIO(context(agent, digest)),
            custom_context=True,
            tag=tag,
            platform=platform,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        errors = [str(item["error"]).strip() for item in stream if item.get("error")]
    except APIError as exc:
        raise BackendError(f"cannot build the agent image {tag}: {api_message(exc)}") from None
    if errors:
        raise BackendError(f"cannot build the agent image {tag}: {errors[-1]}")
    return AgentImage(tag, api.inspect_image(tag)["Id"], platform, digest, built=True)
