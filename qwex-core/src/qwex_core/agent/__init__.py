"""The qwex agent: supervises one command and writes its run record.

Everything under `qwex_core.agent` uses the standard library only, so that it
can be frozen into a self-contained binary and mounted into any container
image (see docs/architecture.md). An import-linter contract enforces this.
"""

from __future__ import annotations

import qwex_core

IMAGE_REPOSITORY = "qwex/agent"
"""The agent image's repository: `FROM scratch` plus the agent bundle at /qwex."""


def image_name(version: str | None = None) -> str:
    """The default tag of the agent image (`qwex agent image`) for this qwex-core version.

    A backend that copies the agent into a pod (qwex-k8s' init container) uses it when no
    image is configured; the image and the installed qwex-core must be the same version,
    since the agent writes the record this qwex reads."""
    return f"{IMAGE_REPOSITORY}:{version or qwex_core.__version__}"
