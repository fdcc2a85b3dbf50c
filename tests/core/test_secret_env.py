"""Core's secret environment: a local run's command gets it, no file of the run keeps it, and a
runner that does not say it keeps secrets out of its records (every runner written before
`accepts_secret_env` existed) never gets such a job."""

from __future__ import annotations

import hashlib
import secrets
import types
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from qwex_core.config import load_config
from qwex_core.errors import SpecError
from qwex_core.lifecycle import Probe, Seen
from qwex_core.models import JobSpec, Run, RunStatus
from qwex_core.plugin import hookimpl
from qwex_core.plugin.manager import PluginHost
from qwex_core.runners.base import Runner
from qwex_core.service import RunService
from qwex_core.store import RunStore

VALUE = "s3cr3t-" + secrets.token_hex(16)


class OldRunner(Runner):
    """A third-party runner as the plugin docs described it before secret env existed."""

    starts: list[Run] = []

    def start(self, run: Run) -> None:
        OldRunner.starts.append(run)

    def probe(self, run: Run) -> Probe:
        return Probe(Seen.NOTHING)

    def signal(self, run: Run, signum: int) -> None:
        pass


def service(project: Path) -> RunService:
    module = types.ModuleType("old")

    def qwex_register_runners(register: Any) -> None:
        register("old", OldRunner)

    module.qwex_register_runners = hookimpl(qwex_register_runners)  # type: ignore[attr-defined]
    host = PluginHost(plugins=[("old", module)])
    return RunService(host, load_config(project, host.config_sections), RunStore(project))


def test_a_local_run_gets_its_secret_env_and_no_file_keeps_it(project: Path) -> None:
    svc = service(project)
    spec = svc.job(["sh", "-c", 'printf %s "$API_KEY" | sha256sum | cut -c1-64'])
    spec.secret_env = {"API_KEY": VALUE}
    assert VALUE not in repr(spec) and VALUE not in spec.model_dump_json()
    final = svc.wait(svc.submit(spec), timeout=30)
    assert final.status is RunStatus.SUCCEEDED
    digest = hashlib.sha256(VALUE.encode()).hexdigest()
    assert svc.store.log_path(final.id, "stdout").read_text() == digest + "\n"
    for path in (project / ".qwex").rglob("*"):
        assert not path.is_file() or VALUE.encode() not in path.read_bytes(), path


def test_a_runner_that_does_not_accept_secret_env_never_gets_the_job(project: Path) -> None:
    svc = service(project)
    spec = svc.job(["true"], backend="old")
    spec.secret_env = {"API_KEY": VALUE}
    with pytest.raises(SpecError, match="the old backend does not say it keeps secret"):
        svc.submit(spec)
    assert OldRunner.starts == [] and list(svc.store.ids()) == []
    spec.secret_env = {}
    svc.submit(spec)  # the same runner without secrets: as before
    assert len(OldRunner.starts) == 1


@pytest.mark.parametrize("name", ["A=B", "", "X\x00"])
def test_an_env_name_no_process_can_hold_is_refused_when_the_job_is_built(name: str) -> None:
    with pytest.raises(ValidationError, match="cannot name an environment variable"):
        JobSpec(command=["true"], env={name: "x"})
