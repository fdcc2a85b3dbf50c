"""The agent image: `FROM scratch` plus the agent bundle at /qwex (`qwex agent image`).

One platform is built by the Docker daemon into a tag; several (linux/amd64 and
linux/arm64) are written without any daemon as one OCI image index in an OCI layout
archive (`oci_archive`), which a registry push (`skopeo copy oci-archive:...`) or
containerd (`ctr images import --all-platforms`) takes: each node then pulls the agent
of its own architecture under the one name.

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
from typing import Any, BinaryIO

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


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
"""Uncompressed: the bundle is copied once per node, and a fixed byte stream keeps the
archive reproducible (same agents, same digests)."""


@dataclass(frozen=True)
class OciImage:
    archive: Path
    name: str
    index: str
    """What `name` points to: the digest of the image index, or of the one manifest when
    there is one platform."""
    manifests: dict[str, str]
    """Platform (`linux/arm64`) -> the digest of its image manifest."""


def full_name(name: str) -> str:
    """`name` as containerd and the kubelet store it: `qwex/agent:1` -> `docker.io/qwex/agent:1`."""
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name if rest else 'library/' + name}"
    return name if ":" in name.rsplit("/", 1)[-1] or "@" in name else f"{name}:latest"


def bundle_layer(agent: Agent) -> bytes:
    """The bundle as a layer: `qwex/` and everything below, sorted, owned by root, time 0."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = [agent.path, *sorted(agent.path.rglob("*"))]
        for path in paths:
            arcname = (Path(MOUNT.lstrip("/")) / path.relative_to(agent.path)).as_posix()
            info = tar.gettarinfo(str(path), arcname=arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isfile():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return buf.getvalue()


def oci_archive(agents: list[Agent], name: str, out: Path) -> OciImage:
    """Write one image index holding the agent image of every agent (one per platform) as
    an OCI layout tar at `out`, the index named `name`. No daemon, no registry."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    def dumps(value: object) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

    manifests = []
    by_platform = {}
    command = [f"{MOUNT}/{LAUNCHER}", *COPY_VERB, INSTALL_DIR]
    for agent in sorted(agents, key=lambda a: str(a.platform)):
        layer = bundle_layer(agent)
        layer_ref = blob(layer)
        labels = {
            VERSION_LABEL: qwex_core.__version__,
            DIGEST_LABEL: bundle_digest(agent.path),
            "org.opencontainers.image.title": "qwex agent",
            "org.opencontainers.image.description": (
                f"the self-contained qwex agent for {agent.platform}, at {MOUNT}"
            ),
        }
        config = {
            "architecture": agent.platform.arch,
            "os": agent.platform.os,
            "config": {"Cmd": command, "Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [layer_ref["digest"]]},
            "history": [{"created_by": f"qwex agent image: the agent bundle at {MOUNT}"}],
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **blob(dumps(config))},
            "layers": [{"mediaType": OCI_LAYER, **layer_ref}],
        }
        ref = blob(dumps(manifest))
        platform = {"architecture": agent.platform.arch, "os": agent.platform.os}
        if agent.platform.arch == "arm64":
            platform["variant"] = "v8"
        manifests.append({"mediaType": OCI_MANIFEST, **ref, "platform": platform})
        by_platform[str(agent.platform)] = ref["digest"]
    if len(manifests) == 1:
        # One platform: the name points at its manifest itself, as `docker save` does. An
        # index of one would be unpacked by containerd only on a node of that platform.
        (target,) = manifests
        target = {k: v for k, v in target.items() if k != "platform"}
    else:
        index_ref = blob(
            dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
        )
        target = {"mediaType": OCI_INDEX, **index_ref}
    qualified = full_name(name)
    top = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                **target,
                "annotations": {
                    "io.containerd.image.name": qualified,
                    "org.opencontainers.image.ref.name": qualified.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "wb") as fh:
        _write_layout(fh, blobs, dumps(top))
    tmp.replace(out)
    return OciImage(out, qualified, str(target["digest"]), by_platform)


def _write_layout(fh: BinaryIO, blobs: dict[str, bytes], index: bytes) -> None:
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    files.update({f"blobs/sha256/{d.split(':', 1)[1]}": data for d, data in sorted(blobs.items())})
    with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
