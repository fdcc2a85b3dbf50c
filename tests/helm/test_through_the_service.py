"""A user of the installed server, from this host: `qwex run -b remote` through the Service,
the job queued by Kueue (its reason in `qwex status`), then the server's pod deleted and
the chart upgraded while jobs run (nothing lost), and `qwex gc` run in the server's pod
cleaning the jobs' Jobs and ConfigMaps. The data folder is on a claim (a hostPath volume:
the test cluster has no provisioner), as it is by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helm_support import ROOT
from release_support import (
    BUSYBOX,
    IMAGE,
    JOBS_NAMESPACE,
    LOCAL_QUEUE,
    PYTHON,
    TAG,
    Release,
    installed,
    jobs_with,
    service_forward,
)

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(600)]
"""Each test may wait for the module's install (up to 240 s) and a server restart."""

QWEX = str(Path(sys.executable).parent / "qwex")


@pytest.fixture(scope="module")
def release(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    with installed(helm, data=tmp_path_factory.mktemp("server-data")) as r:
        yield r


@pytest.fixture(scope="module")
def url(release: Release) -> Iterator[str]:
    with service_forward(release) as root:
        yield root


@pytest.fixture
def project(tmp_path: Path, url: str) -> Path:
    """A user's project on this host, pointing at the Service."""
    where = tmp_path / "laptop"
    where.mkdir()
    (where / "qwex.toml").write_text(f'[remote]\nbase_url = "{url}"\n')
    return where


def env(project: Path, release: Release) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QWEX_")}
    return {
        **clean,
        "XDG_CONFIG_HOME": str(project.parent / "xdg"),
        "QWEX_REMOTE_TOKEN": release.token,
    }


def qwex(project: Path, release: Release, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [QWEX, *args], cwd=project, env=env(project, release), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done


def start(project: Path, release: Release, *args: str) -> subprocess.Popen[str]:
    """`qwex run ARGS` in the foreground, as a user typed it."""
    return subprocess.Popen(
        [QWEX, "run", "-b", "remote", *args], cwd=project, env=env(project, release),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def status(project: Path, release: Release, name: str) -> dict[str, object]:
    seen = qwex(project, release, "status", "--json", name)
    assert seen.returncode == 0, seen.stderr
    return dict(json.loads(seen.stdout))


def ended(run: subprocess.Popen[str], seconds: float, release: Release) -> tuple[str, str]:
    try:
        return run.communicate(timeout=seconds)
    except subprocess.TimeoutExpired as late:
        run.kill()
        out, err = run.communicate()
        raise AssertionError(
            f"qwex run did not end in {seconds} s: {out}\n{err}\n{release.diagnosis()}"
        ) from late


def wait_until(
    what: str | Callable[[], str], probe: Callable[[], object], seconds: float = 120
) -> None:
    """Poll `probe` each second until true; after `seconds`, fail saying `what`."""
    deadline = time.monotonic() + seconds
    while not probe():
        assert time.monotonic() < deadline, what if isinstance(what, str) else what()
        time.sleep(1)


def blocker(release: Release, name: str) -> None:
    """A Job of Kueue's queue that takes all of its CPU quota (1 core in the test cluster)."""
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": JOBS_NAMESPACE,
            "labels": {"kueue.x-k8s.io/queue-name": LOCAL_QUEUE},
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "hold",
                            "image": BUSYBOX,
                            "imagePullPolicy": "Never",
                            "command": ["sleep", "600"],
                            "resources": {"requests": {"cpu": "1", "memory": "16Mi"}},
                        }
                    ],
                }
            },
        },
    }
    release.apply(json.dumps(manifest), JOBS_NAMESPACE)


def test_a_user_runs_from_the_host_queued_by_kueue_then_output_and_exit_code_back(
    project: Path, release: Release
) -> None:
    (project / "train.py").write_text(
        "import sys\nprint('epoch 1')\nprint('loss 0.25')\nsys.exit(3)\n"
    )
    hold, name = f"hold-{uuid.uuid4().hex[:8]}", f"train-{uuid.uuid4().hex[:8]}"
    blocker(release, hold)
    try:
        wait_until(
            "the blocker was never admitted by Kueue",
            lambda: release.kube("get", "job", hold, "-n", JOBS_NAMESPACE, "-o",
                                 "jsonpath={.spec.suspend}").stdout == "false",
        )  # fmt: skip
        run = start(
            project, release, "--name", name, "--image", PYTHON, "--cpu", "0.5", "--",
            "python", "train.py",
        )  # fmt: skip
        seen: dict[str, object] = {}

        def queued_with_kueues_reason() -> bool:
            nonlocal seen
            if run.poll() is not None:
                raise AssertionError(f"qwex run ended: {run.communicate()}")
            asked = qwex(project, release, "status", "--json", name)
            if asked.returncode != 0:  # `qwex run` has not recorded the run yet
                seen = {"stderr": asked.stderr}
                return False
            seen = json.loads(asked.stdout)
            return seen["status"] == "queued" and "quota" in str(seen.get("reason"))

        wait_until(lambda: f"never queued for quota: {seen}", queued_with_kueues_reason)
        assert run.poll() is None  # still following
    finally:
        release.kube("delete", "job", hold, "-n", JOBS_NAMESPACE, "--wait=false")
    out, err = ended(run, 180, release)
    assert run.returncode == 3, err
    assert out == "epoch 1\nloss 0.25\n"
    final = status(project, release, name)
    assert (final["status"], final["exit_code"]) == ("failed", 3)


def counting_job(marker: str, lines: int) -> list[str]:
    """A command printing `lines` numbered lines a second apart, then exiting 4."""
    script = f"echo {marker}; i=1; while [ $i -le {lines} ]; do echo line $i; i=$((i+1)); sleep 1; done; exit 4"
    return ["--image", BUSYBOX, "--", "sh", "-c", script]


def expected_output(marker: str, lines: int) -> str:
    return marker + "\n" + "".join(f"line {i}\n" for i in range(1, lines + 1))


def followed_through(
    project: Path, release: Release, disturb: Callable[[], None], lines: int = 45
) -> None:
    """A job runs while `disturb()` replaces the server's pod: the `qwex run` following it
    through the Service gets the whole log once, the exit code, and one Job ran."""
    marker, name = f"m-{uuid.uuid4().hex}", f"long-{uuid.uuid4().hex[:8]}"
    run = start(project, release, "--name", name, *counting_job(marker, lines))
    wait_until(
        "the job never printed its third line",
        lambda: "line 3\n" in qwex(project, release, "logs", name).stdout,
    )
    before = {p["metadata"]["uid"] for p in release.pods()}
    disturb()
    out, err = ended(run, 240, release)
    after = {p["metadata"]["uid"] for p in release.pods()}
    assert before.isdisjoint(after), "the server's pod was not replaced"
    assert (run.returncode, out) == (4, expected_output(marker, lines)), err
    final = status(project, release, name)
    assert (final["status"], final["exit_code"]) == ("failed", 4)
    assert qwex(project, release, "logs", name).stdout == expected_output(marker, lines)
    assert len(jobs_with(release, marker)) == 1


def test_deleting_the_servers_pod_mid_job_loses_nothing(project: Path, release: Release) -> None:
    def delete_pod() -> None:
        gone = release.kube("delete", "pod", "-l", release.selector, "--wait=false")
        assert gone.returncode == 0, gone.stderr

    followed_through(project, release, delete_pod)


def test_an_upgrade_to_a_new_image_while_a_job_runs_loses_nothing(
    project: Path, release: Release
) -> None:
    tag = f"{TAG}-upgraded"  # the same image, re-tagged and loaded into the node
    retag = subprocess.run(
        ["docker", "tag", f"{IMAGE}:{TAG}", f"{IMAGE}:{tag}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert retag.returncode == 0, retag.stderr
    try:
        load = subprocess.run(
            ["bash", str(ROOT / ".ci/k8s/cluster.sh"), "load", f"{IMAGE}:{tag}"],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert load.returncode == 0, load.stderr

        def upgrade() -> None:
            done = release.helm_run(
                "upgrade", release.name, str(ROOT / "deploy/helm/qwex-server"), "--reuse-values",
                "--set", f"image.tag={tag}", "--wait", "--timeout", "180s",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr + release.diagnosis()

        followed_through(project, release, upgrade)
        images = {c["image"] for p in release.pods() for c in p["spec"]["containers"]}
        assert images == {f"{IMAGE}:{tag}"}
    finally:
        subprocess.run(["docker", "rmi", f"{IMAGE}:{tag}"], capture_output=True, check=False)


def test_qwex_gc_in_the_servers_pod_cleans_the_jobs_jobs_and_configmaps_after_a_restart(
    project: Path, release: Release
) -> None:
    marker, name = f"gc-{uuid.uuid4().hex}", f"gc-{uuid.uuid4().hex[:8]}"
    (project / "data.txt").write_text(f"a project file, so the job has a snapshot: {marker}\n")
    run = start(
        project,
        release,
        "--name",
        name,
        "--image",
        BUSYBOX,
        "--",
        "sh",
        "-c",
        f"echo {marker}; cat data.txt",
    )
    out, err = ended(run, 120, release)
    assert (run.returncode, out.splitlines()[0]) == (0, marker), err
    (job,) = jobs_with(release, marker)
    volumes = job["spec"]["template"]["spec"]["volumes"]
    maps = [v["configMap"]["name"] for v in volumes if "configMap" in v]
    assert maps, volumes
    gone = release.kube("delete", "pod", "-l", release.selector, "--wait=true", timeout=120)
    assert gone.returncode == 0, gone.stderr
    ready: list[str] = []

    def back() -> bool:
        ready[:] = [
            p["metadata"]["name"]
            for p in release.pods()
            if all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
        ]
        return bool(ready)

    wait_until("the server's pod did not come back", back)
    cleaned = release.kube(
        "exec", ready[0], "-c", "server", "--", "qwex", "gc", "--force", timeout=120
    )
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert "Traceback" not in cleaned.stderr
    wait_until("gc left the Job", lambda: jobs_with(release, marker) == [], seconds=60)

    def maps_left() -> list[str]:
        found = release.kube("get", "configmaps", "-n", JOBS_NAMESPACE, "-o", "name")
        return [m for m in maps if f"configmap/{m}" in found.stdout.split()]

    wait_until("the job's ConfigMap stayed", lambda: maps_left() == [], seconds=60)
