"""The agent for a run: found where it was installed, or built on first use.

`qwex run -b docker` must work right after `pip install`: when no valid bundle
is installed (user cache, `qwex_docker_agents`) and the image's platform is
this machine's, the agent is built into the user cache once, with one line on
stderr. When it cannot be built here, one message names what to install.
An `agent_dir` set in the configuration is used as it is, never written to.
"""

from __future__ import annotations

import sys

from qwex_agent.locate import Agent, AgentError, check, find_agent
from qwex_agent.platforms import Platform


def provide_agent(platform: Platform, *, agent_dir: str | None, image: str | None) -> Agent:
    """The agent bundle to mount for an image of `platform`, built here on first use when
    it can be; an `AgentError` saying what to install when it cannot."""
    try:
        return find_agent(platform, agent_dir=agent_dir, image=image)
    except AgentError:
        if agent_dir or platform != Platform.host() or platform.os != "linux":
            raise
    from qwex_agent.build import BuildError, build

    of_image = f" (the platform of image {image})" if image else ""
    try:
        path = build(announce=_stderr)
    except BuildError as exc:
        raise AgentError(f"no qwex agent for {platform}{of_image} yet, and {exc}") from None
    except OSError as exc:
        raise AgentError(
            f"no qwex agent for {platform}{of_image} yet, and it cannot be built into the user "
            f"cache: {exc} (set XDG_CACHE_HOME to a folder you can write)"
        ) from None
    agent, why = check(path, platform)
    if agent is None:
        raise AgentError(f"the qwex agent built for {platform} is not usable: {why}")
    return agent


def _stderr(message: str) -> None:
    print(f"qwex: {message}", file=sys.stderr, flush=True)
