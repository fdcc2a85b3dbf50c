"""`DockerRunner`: the run in a container of any image, the qwex agent mounted from the host.

`start` checks the image is present (qwex pulls only when asked), picks the
agent bundle by the image's platform, creates the container, records its id
in the run record *before* starting it (so a killed CLI never leaves an
untracked container), then starts it. Inside, the agent writes the record and
logs straight into the host's run directory. Any qwex process can then find
the container from the record (or from its `qwex.run-id` label), tell a
vanished one, and cancel it. The daemon removes the container once it exits
(auto-remove, as `docker run --rm`), after the agent recorded the end.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from qwex_core.agent.record import CANCEL_FILE, cancel_reason, request_cancel
from qwex_core.errors import BackendError
from qwex_core.models import JobSpec, Run, RunStatus
from qwex_core.runners.base import Runner

from qwex_docker import spec as plan
from qwex_docker.bundle.locate import find_agent
from qwex_docker.bundle.platforms import Platform
from qwex_docker.client import DaemonUnavailable, api_message, connect, daemon_address
from qwex_docker.settings import DockerSettings
from qwex_docker.verdict import Action, judge, oom_reason

if TYPE_CHECKING:
    import docker

INSPECT_EVERY = 1.0
"""Seconds between two `docker inspect` calls for the same run in one process: the record
tells when the run ends; the container is asked only to notice a vanished agent."""
EXIT_WAIT = 5.0
"""Seconds to wait for a container to exit after its agent recorded a SIGKILL, so that Docker
has seen the OOM event before qwex asks whether the kernel killed the command."""


class DockerRunner(Runner):
    """Runs each job in a new container of `spec.container.image`."""

    uses_container = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        section = self.config.section("docker")
        self.settings = section if isinstance(section, DockerSettings) else DockerSettings()
        self._api: docker.APIClient | None = None
        self._inspected: dict[str, float] = {}

    @property
    def api(self) -> docker.APIClient:
        """The daemon connection, opened on first use (the SDK import is not free)."""
        if self._api is None:
            self._api = connect(self.settings.base_url, self.settings.timeout)
        return self._api

    # -- starting ------------------------------------------------------------

    def validate(self, spec: JobSpec) -> None:
        plan.check(spec, self.store.project_dir)

    def start(self, run: Run) -> None:
        from docker.errors import APIError

        image = str(run.spec.container.image)
        attrs = self._image(image, pull=run.spec.container.pull)
        platform = Platform.of_image(attrs)
        agent = find_agent(platform, agent_dir=self.settings.agent_dir, image=image)
        facts = plan.HostFacts.here(
            self.store.project_dir, self.store.run_dir(run.id), agent.path, self.settings.network
        )
        create, host_config = plan.create_args(
            run, facts, auto_remove=not self.settings.keep_containers
        )
        if create["user"] != facts.uid_gid:
            self._share_run_dir(run)
        try:
            created = self.api.create_container(
                host_config=self.api.create_host_config(**host_config), **create
            )
        except APIError as exc:
            raise BackendError(
                f"Docker refused to create the container: {api_message(exc)}"
            ) from None
        container_id = created["Id"]
        run.backend_data = {
            "container_id": container_id,
            "container_name": create["name"],
            "image_id": attrs.get("Id"),
            "platform": str(platform),
            "docker_host": daemon_address(self.settings.base_url),
        }
        self.store.save(run)  # before the agent starts: afterwards only the agent writes the record
        self._inspected[run.id] = time.monotonic()  # just created: no need to look at it again yet
        try:
            self.api.start(container_id)
        except APIError as exc:
            with contextlib.suppress(APIError):
                self.api.remove_container(container_id, force=True, v=True)
            raise BackendError(f"the container did not start: {api_message(exc)}") from None

    def _share_run_dir(self, run: Run) -> None:
        """Let a container user other than the invoking one write the record and the logs."""
        run_dir = self.store.run_dir(run.id)
        run_dir.chmod(0o777)
        for path in run_dir.iterdir():
            path.chmod(0o666)

    def _image(self, image: str, *, pull: bool) -> dict[str, Any]:
        """The image's inspect data; pulled first only when the job asks for it."""
        from docker.errors import APIError, DockerException, ImageNotFound

        if pull:
            try:
                self.api.pull(image)
            except DockerException as exc:
                raise BackendError(f"cannot pull image {image}: {api_message(exc)}") from None
        try:
            attrs: dict[str, Any] = self.api.inspect_image(image)
        except ImageNotFound:
            raise BackendError(
                f"image not found: {image} is not present locally, and qwex does not pull unless "
                f"asked: add --pull (or run `docker pull {image}`, or `docker load` it)"
            ) from None
        except APIError as exc:
            raise BackendError(f"cannot inspect image {image}: {api_message(exc)}") from None
        return attrs

    # -- finding the container again -------------------------------------------

    def _inspect(self, run: Run) -> dict[str, Any] | None:
        """The run's container as `docker inspect` shows it, or None when there is none."""
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

    def refresh(self, run: Run) -> Run:
        from docker.errors import APIError
        from requests.exceptions import RequestException

        current = self.store.load(run.id)
        if current.is_final:
            return current
        cancel_age = self._cancel_age(current)
        last = self._inspected.get(current.id, 0.0)
        if time.monotonic() - last < INSPECT_EVERY and cancel_age is None:
            return current
        self._inspected[current.id] = time.monotonic()
        try:
            info = self._inspect(current)
        except (DaemonUnavailable, APIError, RequestException):
            return current  # cannot tell now; the record stands
        current = self.store.load(run.id)  # read after inspecting: an exited agent wrote its last
        if current.is_final:
            return current
        verdict = judge(
            info,
            has_container_id=bool(current.backend_data.get("container_id")),
            age=(datetime.now(UTC) - current.created_at).total_seconds(),
            cancel_age=cancel_age,
            cancel_reason=self._cancel_reason(current),
            stop_after=current.spec.grace_period + plan.STOP_MARGIN,
        )
        if verdict.action is Action.KEEP:
            return current
        if verdict.action is Action.KILL and info is not None:
            with contextlib.suppress(APIError):
                self.api.kill(info["Id"], signal="SIGKILL")
            # Recorded now: the daemon removes the killed container, which then tells nothing.
            reason = self._cancel_reason(current)
            return self.store.record_end(
                current,
                RunStatus.CANCELLED,
                f"{reason} (the agent did not stop within the grace period; "
                "its container was killed)",
            )
        if verdict.action is Action.DISCARD and info is not None:
            with contextlib.suppress(APIError):
                self.api.remove_container(info["Id"], force=True, v=True)
        status = RunStatus.CANCELLED if verdict.action is Action.CANCELLED else RunStatus.LOST
        return self.store.record_end(current, status, verdict.reason)

    def _with_oom_reason(self, run: Run) -> Run:
        """A final run whose command died of SIGKILL: say `OOMKilled` when Docker saw the OOM killer.

        The agent only sees a SIGKILL; the container's OOM flag tells who sent it. Written
        once, after the final state (when the agent no longer writes)."""
        if (
            run.status is not RunStatus.FAILED
            or run.signal != "SIGKILL"
            or "oom_killed" in run.backend_data
        ):
            return run
        from docker.errors import APIError
        from requests.exceptions import RequestException

        try:
            info = self._inspect(run)
            if info is not None and info["State"].get("Running"):
                self.api.wait(info["Id"], timeout=EXIT_WAIT)
                info = self._inspect(run)
        except (DaemonUnavailable, APIError, RequestException):
            return run  # cannot tell (or it has not exited in time): keep the agent's reason
        if info is None:
            return run
        record = run.model_dump(mode="json")
        oom = bool(info["State"].get("OOMKilled"))
        record["backend_data"]["oom_killed"] = oom
        if oom:
            record["reason"] = oom_reason(run.spec.resources.memory)
            if record.get("history"):
                record["history"][-1]["reason"] = record["reason"]
        amended = Run.model_validate(record)
        self.store.save(amended, durable=True)
        return amended

    # -- cancel and cleanup ----------------------------------------------------

    def _cancel_age(self, run: Run) -> float | None:
        try:
            return time.time() - (self.store.run_dir(run.id) / CANCEL_FILE).stat().st_mtime
        except OSError:
            return None

    def _cancel_reason(self, run: Run) -> str:
        return cancel_reason(self.store.run_dir(run.id)) or "cancelled by user"

    def cancel(
        self, run: Run, *, reason: str = "cancelled by user", interrupt: bool = False
    ) -> None:
        """Mark the cancel, then signal the agent (PID 1): it stops the command with the grace
        period and records `cancelled`. If the container still runs after the grace period
        plus a margin, the next refresh kills it (the container's stop timeout does the
        same for a plain `docker stop`)."""
        from docker.errors import APIError

        request_cancel(self.store.run_dir(run.id), reason)
        info = self._inspect(run)
        status = (info or {}).get("State", {}).get("Status")
        if info is not None and status == "created":
            with contextlib.suppress(APIError):
                self.api.remove_container(info["Id"], force=True, v=True)
            current = self.store.load(run.id)
            if not current.is_final:
                self.store.record_end(current, RunStatus.CANCELLED, reason)
            return
        if info is not None and status in ("running", "paused", "restarting"):
            try:
                self.api.kill(info["Id"], signal="SIGINT" if interrupt else "SIGTERM")
                return
            except APIError:
                pass  # it stopped meanwhile
        self._inspected.pop(run.id, None)
        self.refresh(run)

    def cleanup(self, run: Run) -> None:
        """The daemon removes a finished container itself (auto-remove, like `docker run --rm`).
        A kept one (`keep_containers`) still tells whether the OOM killer took the agent too."""
        self._inspected.pop(run.id, None)
        if not self.settings.keep_containers:
            return
        from docker.errors import APIError
        from requests.exceptions import RequestException

        with contextlib.suppress(DaemonUnavailable, APIError, RequestException):
            self._with_oom_reason(self.store.load(run.id))
