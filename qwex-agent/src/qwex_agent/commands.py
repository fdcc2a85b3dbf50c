"""`qwex agent build|path|image`, added to the qwex CLI by the qwex-agent plugin.

Defined with click only; the docker SDK and the build machinery are imported
inside the command bodies. This module is imported when `qwex agent` looks up one of
its commands (`qwex_agent.plugin.AgentGroup`), never for another qwex command.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import click

from qwex_agent.plugin import agent as agent  # the group these commands are added to

if TYPE_CHECKING:
    from qwex_core.cli.context import State

    from qwex_agent.locate import Agent
    from qwex_agent.platforms import Platform as PlatformType


@agent.command("build")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    help="Directory to build into (default: the user cache, where qwex looks).",
)
@click.option("--force", is_flag=True, help="Rebuild even if an up-to-date agent is there.")
@click.option(
    "--platform",
    "platform_name",
    help="OS/ARCH to build for, e.g. linux/arm64 (default: this machine's). Another "
    "architecture is cross-built from its Debian packages (docs/agent.md).",
)
@click.option(
    "--sysroot",
    type=click.Path(file_okay=False, exists=True),
    help="A root filesystem of the target platform to cross-build from, instead of its "
    "Debian packages fetched with apt-get into the user cache.",
)
def agent_build(
    output: str | None, force: bool, platform_name: str | None, sysroot: str | None
) -> None:
    """Build the agent for this machine's platform, or cross-build it for another.

    For this machine it needs a C compiler and Python's headers; for another architecture
    (linux/arm64 on amd64, or the reverse) Debian's cross compiler (gcc-aarch64-linux-gnu),
    qemu-user-static for its smoke test, and that architecture's Debian packages.
    `qwex run -b docker` builds this machine's on first use too; this is the explicit way."""
    from pathlib import Path

    from qwex_agent.build import BuildError, build
    from qwex_agent.platforms import Platform

    def say(message: str) -> None:
        click.echo(f"qwex: {message}", err=True)

    try:
        platform = Platform.parse(platform_name) if platform_name else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--platform") from None
    if sysroot is not None and (platform is None or platform == Platform.host()):
        raise click.BadParameter(
            "a native build uses this Python; --sysroot goes with --platform of another "
            "architecture",
            param_hint="--sysroot",
        )
    try:
        path = build(
            Path(output) if output else None,
            force=force,
            log=say,
            announce=say,
            platform=platform,
            sysroot=Path(sysroot) if sysroot else None,
        )
    except BuildError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(path))


@agent.command("path")
@click.option(
    "--platform", "platform_name", help="OS/ARCH, e.g. linux/arm64 (default: this machine's)."
)
@click.option("--image", help="Use the platform of this local image (asks the Docker daemon).")
@click.pass_obj
def agent_path(state: State, platform_name: str | None, image: str | None) -> None:
    """Print the agent bundle used for a platform (or an image), or say why there is none."""
    from qwex_agent.locate import find_agent
    from qwex_agent.platforms import Platform

    settings = _settings(state)
    if image:
        from qwex_agent.daemon import connect

        api = connect(settings.base_url, settings.timeout)
        from docker.errors import ImageNotFound

        try:
            platform = Platform.of_image(api.inspect_image(image))
        except ImageNotFound:
            raise click.ClickException(f"image {image} is not present locally") from None
    elif platform_name:
        try:
            platform = Platform.parse(platform_name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--platform") from None
    else:
        platform = Platform.host()
    click.echo(str(find_agent(platform, agent_dir=settings.agent_dir, image=image).path))


@agent.command("image")
@click.option("--tag", help="Image tag (default: qwex/agent:<qwex-core version>).")
@click.option(
    "--platform",
    "platform_names",
    multiple=True,
    help="OS/ARCH of the agent, e.g. linux/arm64 (default: this machine's). Repeat it for a "
    "multi-platform image (with --oci-archive).",
)
@click.option(
    "--oci-archive",
    type=click.Path(dir_okay=False),
    help="Write the image as one OCI image index (every --platform under the one tag) into "
    "this OCI layout tar, without the Docker daemon: for `ctr images import "
    "--all-platforms` or `skopeo copy oci-archive:FILE docker://...`.",
)
@click.option("--force", is_flag=True, help="Build even if the tag already holds this agent.")
@click.option("--json", "as_json", is_flag=True, help="Print the tag, id and platform as JSON.")
@click.pass_obj
def agent_image(
    state: State,
    tag: str | None,
    platform_names: tuple[str, ...],
    oci_archive: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Build the agent image: FROM scratch plus the agent bundle at /qwex, offline.

    A Kubernetes pod gets the agent from it through an init container that runs
    `/qwex/bin/qwex agent copy /qwex-install` (its default command) into an emptyDir.
    Prints the tag; to use it on a cluster, `docker tag` and `docker push` it to a
    registry the cluster pulls from (docs/kubernetes.md). With --oci-archive and
    `--platform linux/amd64 --platform linux/arm64`, one image index holds both, so every
    node pulls the agent of its own architecture under the one tag. The agent of this
    machine's platform is built first when missing, another architecture's cross-built.
    """
    from qwex_core.agent import image_name

    from qwex_agent.platforms import Platform

    settings = _settings(state)
    try:
        platforms = [Platform.parse(p) for p in platform_names] or [Platform.host()]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--platform") from None
    platforms = sorted(set(platforms))
    if len(platforms) > 1 and oci_archive is None:
        raise click.BadParameter(
            "several platforms make one image index, which this Docker daemon cannot keep "
            "under one tag: add --oci-archive FILE",
            param_hint="--platform",
        )
    agents = [_agent_for(platform, settings) for platform in platforms]
    import json
    from pathlib import Path

    if oci_archive is not None:
        from qwex_agent.image import oci_archive as write_archive

        written = write_archive(agents, tag or image_name(), Path(oci_archive))
        if as_json:
            click.echo(
                json.dumps({**dataclasses.asdict(written), "archive": str(oci_archive)}, indent=2)
            )
        else:
            click.echo(str(oci_archive))
        return
    from qwex_agent.daemon import connect
    from qwex_agent.image import build_image

    (agent,) = agents
    api = connect(settings.base_url, max(settings.timeout, 300))
    image = build_image(api, agent, tag or image_name(), force=force)
    if as_json:
        click.echo(json.dumps({**dataclasses.asdict(image), "agent": str(agent.path)}, indent=2))
    else:
        if not image.built:
            click.echo(f"qwex: {image.tag} already holds this agent", err=True)
        click.echo(image.tag)


def _agent_for(platform: PlatformType, settings: AgentSettings) -> Agent:
    """The agent bundle for `platform`: built here first when it is this machine's, and
    cross-built into the user cache when it is another architecture qwex builds."""
    from qwex_agent.locate import AgentError, check
    from qwex_agent.platforms import TRIPLETS, Platform
    from qwex_agent.provide import provide_agent

    try:
        return provide_agent(platform, agent_dir=settings.agent_dir, image=None)
    except AgentError as exc:
        if settings.agent_dir or platform == Platform.host() or platform.arch not in TRIPLETS:
            raise click.ClickException(str(exc)) from None
    from qwex_agent.build import BuildError, build

    def say(message: str) -> None:
        click.echo(f"qwex: {message}", err=True)

    try:
        path = build(platform=platform, announce=say)
    except BuildError as exc:
        raise click.ClickException(f"no qwex agent for {platform} yet, and {exc}") from None
    agent, why = check(path, platform)
    if agent is None:
        raise click.ClickException(f"the qwex agent built for {platform} is not usable: {why}")
    return agent


@dataclasses.dataclass(frozen=True)
class AgentSettings:
    """What the agent commands take from the configuration."""

    agent_dir: str | None = None
    base_url: str | None = None
    timeout: float = 60.0


def _settings(state: State) -> AgentSettings:
    """`agent_dir`, `base_url` and `timeout` of `[tool.qwex.docker]` when the docker backend
    is installed (it registers that section; qwex-agent never imports it), else defaults:
    the user cache and the prebuilt agents, DOCKER_HOST or the local socket."""
    docker = state.service().config.sections.get("docker")
    return AgentSettings(
        agent_dir=getattr(docker, "agent_dir", None),
        base_url=getattr(docker, "base_url", None),
        timeout=float(getattr(docker, "timeout", 60.0)),
    )
