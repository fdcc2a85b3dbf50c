"""qwex-agent: the self-contained qwex agent, built once and reached by every backend.

The agent is qwex-core's `qwex_core.agent` frozen with this machine's CPython into a bundle
that needs nothing from the image it runs in. The docker backend mounts it at /qwex; the
Kubernetes backend copies it into each pod from the agent image (`qwex agent image`). Both
depend on this distribution, never on each other (docs/agent.md).
"""
