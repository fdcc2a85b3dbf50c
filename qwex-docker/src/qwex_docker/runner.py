"""`DockerRunner`: the run in a container of any image, the qwex agent mounted from the host.

`start` checks the image is present (qwex pulls only when asked), picks the
agent bundle by the image's platform, creates the container, records its id
in the run record *before* starting it (so a killed CLI never leaves an
untracked container), then starts it. Inside, the agent writes the record and
logs straight into the host's run directory. `probe` finds the container from
the record (or from its `qwex.run-id` label) and tells core what state it is
in; core decides the rest (`qwex_core.lifecycle`). The daemon removes the
container once it exits (auto-remove, as `docker run --rm`), after the agent
recorded the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from qwex_agent.platforms import Platform
from qwex_agent.provide import provide_agent
from qwex_core.errors import BackendError
from qwex_core.lifecycle import Probe, Seen, oom_reason
from qwex_core.runners.base import Runner
from qwex_core.timings import mark

from qwex_docker import lean, sharing
from qwex_docker import spec as plan
from qwex_docker.client import (
    DaemonUnavailable,
    api_message,
    connect_lean,
    connect_reusing,
    daemon_address,
    forget_version,
    import_sdk,
    unreachable,
)
from qwex_docker.settings import DockerSettings

if TYPE_CHECKING:
    import docker
    from qwex_core.config import QwexConfig
    from qwex_core.models import JobSpec, Run
    from qwex_core.store import RunStore

    from qwex_docker.watch import Changes

EXIT_WAIT = 5.0
"""Seconds to wait for a kept container to exit after its agent recorded a SIGKILL, so that
Docker has seen the OOM event before qwex asks whether the kernel killed the command."""
ALIVE = ("running", "paused", "restarting", "removing")
WATCHED = 64
"""Runs whose files one runner remembers at once for `wait_for_change` (a server follows
several); past that the oldest is forgotten (its next wait starts afresh)."""
Result = TypeVar("Result")


class DockerRunner(Runner):
    """Runs each job in a new container of `spec.container.image`."""

    uses_container = True
    accepts_secret_env = True
    """Secret env reaches the agent as a file in the run directory that it reads and deletes
    (`spec.SECRET_ENV_FILE`), never as the container's env: `docker inspect` shows no value."""
    runs_workers = True
    """`--nodes` and `--array`: N processes in the one container (`qwex_core.agent.gang`)."""
    probe_every = 1.0
    """The record tells when the run ends; the container is asked only to notice a vanished
    agent, at most once a second per run."""

    def __init__(self, *, name: str, store: RunStore, config: QwexConfig) -> None:
        super().__init__(name=name, store=store, config=config)
        self.docker = self.settings("docker", DockerSettings)
        self._api: docker.APIClient | None = None
        self._version_reused = False
        self._changes: dict[str, Changes] = {}
        self._lock = threading.Lock()

    @property
    def api(self) -> docker.APIClient:
        """The daemon connection, opened on first use (the SDK import is not free)."""
        if self._api is None:
            self._api, self._version_reused = connect_reusing(
                self.docker.base_url, self.docker.timeout
            )
        return self._api

    def _fresh(self, call: Callable[[], Result]) -> Result:
        """`call()`; when it fails on a client that reused a remembered API version, once
        more on a client that asked the daemon (or `DaemonUnavailable` when none answers)."""
        from docker.errors import APIError, NotFound
        from requests.exceptions import RequestException

        try:
            return call()
        except NotFound:
            raise
        except (APIError, RequestException):
            if not self._version_reused:
                raise
        forget_version(self.docker.base_url)
        self._api, self._version_reused = connect_reusing(self.docker.base_url, self.docker.timeout)
        return call()

    # -- starting ------------------------------------------------------------

    def validate(self, spec: JobSpec) -> None:
        plan.check(spec, self.store.project_dir)
        if plan.shares_run_dir(spec, f"{os.getuid()}:{os.getgid()}"):
            sharing.check_private_group(os.getuid(), os.getgid())

    def start(self, run: Run) -> None:
        """Without the SDK for a local daemon (`qwex_docker.lean`), else through it: the
        container is created, recorded, then started."""
        connected = None if run.spec.container.pull else self._connect_lean()
        if connected is None:
            launch = self._create_with_sdk(run)
        else:
            launch = self._create_lean(run, *connected)
        self.store.save(run)  # before the agent starts: afterwards only the agent writes the record
        launch()

    def describe(self, run: Run) -> str:
        """The container `start` would create, for `qwex run --dry-run`: its name and the
        body of the Docker API's create request, as JSON. The image is inspected for its
        platform (the agent mounted is that platform's) unless the start would pull it;
        nothing is pulled, built, written or created. (Without this, the dry run showed the
        local agent's Python command line, which no container runs.)"""
        import json
        from pathlib import Path

        from qwex_agent.locate import AgentError, find_agent

        image = str(run.spec.container.image)
        if run.spec.container.pull:  # the image, so its platform, is what the start pulls
            agent = Path("<the qwex agent for the platform of the image the start pulls>")
        else:
            platform = Platform.of_image(self._image(image, pull=False))
            try:
                agent = find_agent(platform, agent_dir=self.docker.agent_dir, image=image).path
            except AgentError:
                agent = Path(f"<the qwex agent for {platform}: built or found by the first run>")
        facts = plan.HostFacts.here(
            self.store.project_dir, self.store.run_dir(run.id), agent, self.docker.network
        )
        create, host_config = plan.create_args(
            run, facts, auto_remove=not self.docker.keep_containers
        )
        query, body = lean.create_request(create, host_config)
        return json.dumps({"name": query["name"], "body": body}, indent=2)

    def _connect_lean(self) -> tuple[lean.Daemon, bool] | None:
        return connect_lean(self.docker.base_url, self.docker.timeout)

    def _plan(
        self, run: Run, attrs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], Platform]:
        """`create_container` and `create_host_config` arguments of the run's container, in an
        image of inspect data `attrs`; the run directory shared and the secret env written
        as the container needs them."""
        platform = Platform.of_image(attrs)
        image = str(run.spec.container.image)
        agent = provide_agent(platform, agent_dir=self.docker.agent_dir, image=image)
        facts = plan.HostFacts.here(
            self.store.project_dir, self.store.run_dir(run.id), agent.path, self.docker.network
        )
        create, host_config = plan.create_args(
            run, facts, auto_remove=not self.docker.keep_containers
        )
        shared = plan.shares_run_dir(run.spec, facts.uid_gid)
        if shared:
            sharing.share_with_group(self.store.run_dir(run.id), int(facts.gid))
        if run.spec.secret_env:
            self._write_secret_env(run, group_readable=shared)
        return create, host_config, platform

    def _created(
        self, run: Run, container_id: str, name: str, attrs: dict[str, Any], platform: Platform
    ) -> None:
        """The container in the run's `backend_data` (`start` saves it before the start)."""
        mark("container-created")
        run.backend_data = {
            "container_id": container_id,
            "container_name": name,
            "image_id": attrs.get("Id"),
            "platform": str(platform),
            "docker_host": daemon_address(self.docker.base_url),
        }

    def _create_lean(self, run: Run, daemon: lean.Daemon, reused: bool) -> Callable[[], None]:
        """The run's container created through `daemon`; what starts it."""
        address = daemon_address(self.docker.base_url)
        image = str(run.spec.container.image)
        try:
            attrs = daemon.inspect_image(image)
        except (OSError, lean.LeanError) as exc:
            if isinstance(exc, lean.LeanError) and exc.status == 404:
                raise BackendError(_image_missing(image)) from None
            if not reused:
                raise _lean_failure(exc, f"cannot inspect image {image}", address) from None
            # A remembered version the daemon refuses (an upgrade that kept its socket) or a
            # daemon gone: ask again, as the SDK path does.
            forget_version(self.docker.base_url)
            connected = self._connect_lean()
            if connected is None:
                return self._create_with_sdk(run)
            return self._create_lean(run, connected[0], reused=False)
        mark("image-inspected")
        create, host_config, platform = self._plan(run, attrs)
        try:
            container_id = daemon.create_container(create, host_config)
        except (OSError, lean.LeanError) as exc:
            self._drop_secret_env(run)
            raise _lean_failure(exc, "Docker refused to create the container", address) from None
        self._created(run, container_id, create["name"], attrs, platform)

        def launch() -> None:
            try:
                daemon.start(container_id)
                mark("container-started")
            except (OSError, lean.LeanError) as exc:
                self._drop_secret_env(run)
                with contextlib.suppress(OSError, lean.LeanError):
                    daemon.remove_container(container_id)
                raise BackendError(f"the container did not start: {api_message(exc)}") from None

        return launch

    def _create_with_sdk(self, run: Run) -> Callable[[], None]:
        """The run's container created through the SDK; what starts it."""
        import_sdk()
        from docker.errors import APIError

        image = str(run.spec.container.image)
        attrs = self._image(image, pull=run.spec.container.pull)
        mark("image-inspected")
        create, host_config, platform = self._plan(run, attrs)
        try:
            created = self.api.create_container(
                host_config=self.api.create_host_config(**host_config), **create
            )
        except APIError as exc:
            self._drop_secret_env(run)
            raise BackendError(
                f"Docker refused to create the container: {api_message(exc)}"
            ) from None
        container_id = created["Id"]
        self._created(run, container_id, create["name"], attrs, platform)

        def launch() -> None:
            try:
                self.api.start(container_id)
                mark("container-started")
            except APIError as exc:
                self._drop_secret_env(run)
                with contextlib.suppress(APIError):
                    self.api.remove_container(container_id, force=True, v=True)
                raise BackendError(f"the container did not start: {api_message(exc)}") from None

        return launch

    def _write_secret_env(self, run: Run, *, group_readable: bool) -> None:
        """The job's secret env as JSON in the run directory, for the agent to read and
        delete; readable by this user only (and its group when the container runs as
        another user who reaches the run directory through that group)."""
        import json

        path = self.store.run_dir(run.id) / plan.SECRET_ENV_FILE
        mode = 0o640 if group_readable else 0o600
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            json.dump(run.spec.secret_env, fh)

    def _drop_secret_env(self, run: Run) -> None:
        """Delete the secret env file if the agent did not (it never started)."""
        with contextlib.suppress(OSError):
            (self.store.run_dir(run.id) / plan.SECRET_ENV_FILE).unlink()

    def _image(self, image: str, *, pull: bool) -> dict[str, Any]:
        """The image's inspect data; pulled first only when the job asks for it."""
        from docker.errors import APIError, DockerException, ImageNotFound
        from requests.exceptions import RequestException

        if pull:
            try:
                self._fresh(lambda: self.api.pull(image))
            except DockerException as exc:
                raise BackendError(f"cannot pull image {image}: {api_message(exc)}") from None
        try:
            attrs: dict[str, Any] = self._fresh(lambda: self.api.inspect_image(image))
        except ImageNotFound:
            raise BackendError(_image_missing(image)) from None
        except APIError as exc:
            raise BackendError(f"cannot inspect image {image}: {api_message(exc)}") from None
        except RequestException as exc:
            address = daemon_address(self.docker.base_url)
            raise DaemonUnavailable(unreachable(address, exc)) from None
        return attrs

    # -- finding the container again -------------------------------------------

    def _inspect(self, run: Run) -> dict[str, Any] | None:
        """The run's container as `docker inspect` shows it, or None when there is none."""
        return self._fresh(lambda: self._inspect_once(run))

    def _inspect_once(self, run: Run) -> dict[str, Any] | None:
        from docker.errors import NotFound

        container_id = run.backend_data.get("container_id")
        if not container_id:
            found = self.api.containers(
                all=True, filters={"label": f"{plan.LABEL_RUN_ID}={run.id}"}
            )
            if not found:
                return None
            container_id = found[0]["Id"]
        try:
            info: dict[str, Any] = self.api.inspect_container(container_id)
        except NotFound:
            return None
        return info

    def wait_for_change(self, run: Run, seconds: float) -> None:
        """Back as soon as the agent wrote the record, a log or the write-order index
        (`qwex_docker.watch`: a reader waits for the index entry of bytes it sees)."""
        from qwex_core.agent.order import INDEX_FILE
        from qwex_core.agent.record import RUN_FILE
        from qwex_core.logs import STREAMS

        from qwex_docker.watch import Changes

        with self._lock:
            changes = self._changes.get(run.id)
            if changes is None:
                files = [self.store.run_dir(run.id) / RUN_FILE]
                files += [self.store.log_path(run.id, stream) for stream in STREAMS]
                files.append(self.store.run_dir(run.id) / INDEX_FILE)
                changes = self._changes[run.id] = Changes(files)
                while len(self._changes) > WATCHED:
                    del self._changes[next(iter(self._changes))]
        changes.wait(seconds)

    def cleanup(self, run: Run) -> None:
        self._drop_secret_env(run)
        with self._lock:
            self._changes.pop(run.id, None)

    def probe(self, run: Run) -> Probe | None:
        from docker.errors import APIError
        from requests.exceptions import RequestException

        try:
            info = self._inspect(run)
        except (DaemonUnavailable, APIError, RequestException):
            return None  # cannot tell now; the record stands
        return container_probe(info, known=bool(run.backend_data.get("container_id")))

    def signal(self, run: Run, signum: int) -> None:
        """SIGKILL removes the container (running or only created); other signals go to the
        agent, PID 1 of the container."""
        from docker.errors import APIError

        container = run.backend_data.get("container_id") or plan.container_name(run.id)
        with contextlib.suppress(APIError, DaemonUnavailable):
            if signum == signal.SIGKILL:
                self.api.remove_container(container, force=True, v=True)
            else:
                self.api.kill(container, signal=signal.Signals(signum).name)

    def explain(self, run: Run) -> str | None:
        """A kept container (`keep_containers`) whose command died of SIGKILL: `OOMKilled`
        when Docker saw the OOM killer (the agent itself sees only the SIGKILL)."""
        if not self.docker.keep_containers or run.signal != "SIGKILL":
            return None
        if (run.reason or "").startswith("OOMKilled"):
            return None  # the agent saw it in the memory cgroup
        from docker.errors import APIError
        from requests.exceptions import RequestException

        try:
            info = self._inspect(run)
            if info is not None and info["State"].get("Running"):
                self.api.wait(info["Id"], timeout=EXIT_WAIT)
                info = self._inspect(run)
        except (DaemonUnavailable, APIError, RequestException):
            return None  # cannot tell (or it has not exited in time): keep the agent's reason
        if info is None or not info["State"].get("OOMKilled"):
            return None
        return oom_reason(run.spec.resources.memory)


def _lean_failure(exc: Exception, what: str, address: str) -> BackendError:
    """The daemon's refusal in its words, or why it could not be reached."""
    if isinstance(exc, OSError):
        return DaemonUnavailable(unreachable(address, exc))
    return BackendError(f"{what}: {api_message(exc)}")


def _image_missing(image: str) -> str:
    return (
        f"image not found: {image} is not present locally, and qwex does not pull unless "
        f"asked: add --pull (or run `docker pull {image}`, or `docker load` it)"
    )


def container_probe(info: dict[str, Any] | None, *, known: bool) -> Probe:
    """What `docker inspect` data (None: no such container) says about a run's agent;
    `known`: the record holds the container's id, so it was created."""
    if info is None:
        return Probe(Seen.GONE if known else Seen.NOTHING, "its container")
    state = info.get("State") or {}
    status = state.get("Status", "")
    what = f"its container {str(info.get('Id', ''))[:12]}"
    if status == "created":
        return Probe(Seen.STARTING, what)
    if status in ALIVE:
        return Probe(Seen.ALIVE, what)
    return Probe(
        Seen.EXITED,
        what,
        exit_code=state.get("ExitCode"),
        oom=bool(state.get("OOMKilled")),
        error=state.get("Error") or "",
    )
