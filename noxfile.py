"""Every task a developer or CI runs. `nox` alone runs what CI needs."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "contracts", "gen_check", "docs", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True

PYTHON = "3.11"
PACKAGES = [
    *("-e", "qwex-core", "-e", "qwex-agent", "-e", "qwex-docker", "-e", "qwex-k8s"),
    *("-e", "qwex-remote[server]", "-e", "qwex-slurm"),
]
"""Not qwex-docker-agents: the tests prove the agent is built on first use without it, and
install its wheel in a venv of their own (tests/docker/test_docker_install.py). qwex-remote
with its `server` extra: the tests start `qwex serve` (a client-only install is tested in a
venv of its own, tests/remote/test_client_install.py)."""
DISTRIBUTIONS = [
    "qwex-core",
    "qwex-agent",
    "qwex-docker",
    "qwex-docker-agents",
    "qwex-k8s",
    "qwex-remote",
    "qwex-slurm",
]
AGENTS_PACKAGE = "qwex-docker-agents/src/qwex_docker_agents"
GENERATOR = "openapi-python-client==0.29.1"
"""Pinned: another version writes another client (tools/gen_client.py checks it)."""
DOCS_DEPS = ["mkdocs==1.6.1", "mkdocs-material==9.8.2"]
"""Pinned: a new theme or MkDocs may warn about what this one accepts, and `--strict` fails."""
TEST_DEPS = [
    *DOCS_DEPS,  # tests/core/test_docs_site.py builds the site
    "pytest>=8,<9.2",  # 9.2 builds node ids another way: xdist 3.8 can no longer group tests
    "pytest-timeout",
    "pytest-xdist",
    "kubernetes-validate",
    GENERATOR,
    "schemathesis==4.32.5",  # pinned: its checks and generation change between releases
    "selenium>=4.20",  # drives Debian's chromium through its chromedriver (tests/dashboard)
    "axe-selenium-python-nhsuk==1.0.4",  # axe-core 4.9.1's axe.min.js; pinned: rules change
]
TEST_FOLDERS = [
    "tests/core",
    "tests/dashboard",
    "tests/docker",
    "tests/helm",
    "tests/k8s",
    "tests/nonroot",
    "tests/remote",
    "tests/slurm",
]


TESTS_XDIST = ["-n", "3", "--dist", "loadgroup"]
"""Three workers: the cluster's tests one after another on one (tests/conftest.py's
SHARED_GROUPS), the Docker daemon's on another, the rest spread over all three. The tests
mostly wait (on pods, containers, servers), so this shortens CI by what the groups overlap."""


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite: core, plugins, the example plugin, Docker on the real daemon."""
    session.install(*PACKAGES, *TEST_DEPS)
    session.run("pytest", *TESTS_XDIST, *session.posargs, env=_bytecode_cached(session))


UNIT = (
    "not docker and not k8s and not live and not postgres and not users and not serve and not slow"
    " and not helm and not browser and not slurm"
)
"""The tests that need no real component and are quick (pyproject's markers). A test reaching
a component through its fixture is marked by tests/conftest.py even if its module forgot."""
UNIT_IGNORED = ["tests/remote/test_schemathesis.py"]
"""Modules the fast loop does not even collect: every test in them is deselected anyway (each
needs a `qwex serve`), and collecting them costs seconds of every worker's CPU (schemathesis
builds its coverage cases for each operation of the spec while collecting)."""


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """The fast loop: every test that needs no Docker daemon, cluster, PostgreSQL, test user or
    `qwex serve` or Helm and is not marked slow, with two pytest-xdist workers per core (idle
    workers steal queued tests). Not part of `nox`: `nox -s tests` runs these and the rest. Under CI rules
    (`CI=true`), so a test that needs a component and is not marked for it fails here instead
    of skipping. `-- ARGS` go to pytest (`-- -n 2` for fewer workers).

    Left out, each for a reason (the rest runs here):
    - `docker`, `k8s`, `live`, `postgres`, `users`, `slurm`: they need that real component;
    - `serve`: each starts a real `qwex serve`, seconds apiece;
    - `slow`: virtual environments (the example plugin, installs), building the agent or the
      API client, large data, and the conformance suite against broken runners, which waits
      out its timeout for minutes;
    - UNIT_IGNORED modules are not even collected (all their tests are `serve`), and the
      pytest plugins only they use (schemathesis's, hypothesis's) are not loaded.

    The CLI the tests start is forked from the test process with its libraries loaded
    (tests/warm_cli.py: a process of its own all the same, cleared of every qwex and test
    module): it halves the loop's CPU. `nox -s tests` starts the console script each time."""
    _install_once(session, *PACKAGES, *TEST_DEPS)
    # Twice as many workers as cores: the tests wait on the processes they start about as
    # much as they compute (482 tests on 2 cores: 66 s with 2 workers, 53 with 3, 52 with 4).
    xdist = ["-n", str(2 * (os.cpu_count() or 1)), "--dist", "worksteal"]
    ignored = [f"--ignore={module}" for module in UNIT_IGNORED]
    unused = ["-p", "no:schemathesis", "-p", "no:hypothesispytest"]
    env = {"CI": "true", "QWEX_TESTS_WARM_CLI": "1", **_bytecode_cached(session)}
    session.run("pytest", *xdist, "-m", UNIT, *ignored, *unused, "-q", *session.posargs, env=env)


def _install_once(session: nox.Session, *args: str) -> None:
    """`session.install(*args)`, skipped when this venv already has them: the same arguments
    and the same `pyproject.toml` of every distribution (where dependencies and entry points
    are). Editable sources are followed without it. pip resolving and rebuilding five editable
    installs again took 80 to 100 s of the fast loop on a loaded machine, more than its tests."""
    import hashlib

    digest = hashlib.sha256("\0".join(args).encode())
    for pyproject in sorted(Path().glob("qwex-*/pyproject.toml")):
        digest.update(pyproject.read_bytes())
    stamp = Path(session.virtualenv.location) / "installed.sha256"
    if stamp.is_file() and stamp.read_text() == digest.hexdigest():
        session.log("installed packages unchanged: not reinstalled")
        return
    session.install(*args)
    stamp.write_text(digest.hexdigest())


def _bytecode_cached(session: nox.Session) -> dict[str, str | None]:
    """Compiled bytecode kept under the session's venv, even when PYTHONDONTWRITEBYTECODE is set.

    Without a cache every `qwex` the tests start compiles qwex-core's sources again (about
    0.1 s of CPU each, hundreds of times), and every pytest process rewrites and compiles
    some 460 test and plugin modules. The cache lives outside the checkout, which stays
    free of `.pyc` files as that variable asks."""
    prefix = Path(session.virtualenv.location) / "pycache"
    return {"PYTHONDONTWRITEBYTECODE": None, "PYTHONPYCACHEPREFIX": str(prefix)}


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff==0.17.6")  # pinned: a new ruff may format differently
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every distribution's source, then over the tests.

    pytest puts each test folder (and tests/) on sys.path, so its helpers import as top-level
    modules (`cli_support`, `users`) and every folder has its own `conftest`: one mypy run
    per folder, with that folder and tests/ on MYPYPATH, resolves them the same way."""
    session.install(*PACKAGES, "mypy", *TEST_DEPS)
    session.run(
        "mypy",
        "qwex-core/src",
        "qwex-agent/src",
        "qwex-docker/src",
        "qwex-docker-agents/src",
        "qwex-k8s/src",
        "qwex-remote/src",
        "qwex-slurm/src",
        "examples/qwex-nice/src",
    )
    session.run(
        "mypy",
        "tests/conftest.py",
        "tests/users.py",
        "tests/warm_cli.py",
        "tests/quickstart.py",
        env={"MYPYPATH": "tests"},
    )
    # The docs' examples and inventory import tools/docs_reference as the MkDocs hook does.
    docs_support = ["tests/docs_examples.py", "tests/docs_inventory.py"]
    session.run("mypy", *docs_support, env={"MYPYPATH": "tests:tools"})
    session.run("mypy", "tools/docs_hooks.py", "tools/docs_reference.py", env={"MYPYPATH": "tools"})
    for folder in TEST_FOLDERS:
        # The dashboard's tests use tests/remote's server_support and tests/k8s's k8s_support;
        # tests/core's and tests/docker's docs tests import tools/docs_reference as the MkDocs
        # hook does.
        extra = ":tests/remote:tests/k8s" if folder == "tests/dashboard" else ""
        extra = ":tools" if folder in ("tests/core", "tests/docker") else extra
        session.run("mypy", folder, env={"MYPYPATH": f"{folder}:tests{extra}"})
    example = "examples/qwex-nice"  # its tests run in a venv of their own (test_example_plugin)
    session.run("mypy", f"{example}/tests", env={"MYPYPATH": f"{example}/tests:{example}/src"})


@nox.session(python=PYTHON)
def contracts(session: nox.Session) -> None:
    """import-linter: core never imports a backend, backends never import each other, core
    keeps its layers (no import cycle), the agent stays stdlib-only."""
    session.install(*PACKAGES, "import-linter")
    session.run("lint-imports")


@nox.session(python=PYTHON)
def gen(session: nox.Session) -> None:
    """Regenerate qwex-remote/openapi.json and the API client (qwex_remote/client) safely.

    Generated in a temporary directory, swapped in, imported and tried with the adapter's
    tests; the old client and spec come back on any failure (tools/gen_client.py).
    `-- --spec FILE` generates from FILE instead of the app's spec."""
    session.install(
        "-e", "qwex-core", "-e", "qwex-remote[server]", GENERATOR, "pytest>=8", "pytest-timeout"
    )
    session.run("python", "tools/gen_client.py", "gen", *session.posargs)


@nox.session(python=PYTHON)
def gen_check(session: nox.Session) -> None:
    """Fail when the committed spec or API client differs from what the code produces."""
    session.install("-e", "qwex-core", "-e", "qwex-remote[server]", GENERATOR)
    session.run("python", "tools/gen_client.py", "check")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site, `mkdocs build --strict` into site/ (git-ignored): no warning
        allowed. References (CLI, configuration, hooks, server API) are generated from the
        installed code while building (tools/docs_hooks.py), so a page linking to an option, a
        key or a hook that is gone fails the build. Pictures are drawn by Debian's Graphviz `dot`
    (.ci/setup-docs.sh). About 2 s once installed (the references take 0.3 s of it); 50 s
    from a fresh clone, nearly all of it creating the venv and installing."""
    _install_once(session, *PACKAGES, *DOCS_DEPS)
    env = {"NO_MKDOCS_2_WARNING": "1"}  # the theme's banner about its successor, not ours
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs, env=env)


@nox.session(python=False)
def images(session: nox.Session) -> None:
    """The offline Docker test images (qwex-test/busybox, qwex-test/python, and the linux/arm64
    and linux/s390x ones of .ci/foreign-test-images.sh); skips existing ones.

    Needs a running daemon (`.ci/setup-docker.sh`); QWEX_REBUILD_IMAGES=1 rebuilds them."""
    session.run("bash", ".ci/build-test-images.sh", external=True)
    session.run("bash", ".ci/foreign-test-images.sh", external=True)


@nox.session(python=False)
def cluster(session: nox.Session) -> None:
    """The single-node Kubernetes + Kueue test cluster (root): `-- up|down|status|load IMAGE`.

    `up` builds its binaries from their Go modules on first use (cached per version outside
    the checkout), then starts it in its own network namespace; see .ci/k8s/cluster.sh."""
    session.run("bash", ".ci/k8s/cluster.sh", *(session.posargs or ["status"]), external=True)


@nox.session(python=False)
def slurm(session: nox.Session) -> None:
    """The one-node Slurm test cluster (root): `-- up|down|status|logs`.

    Debian's slurmctld and slurmd on this machine with munge, loopback only, state under
    /var/lib/qwex-slurm (.ci/slurm/cluster.sh; packages: .ci/setup-slurm.sh)."""
    session.run("bash", ".ci/slurm/cluster.sh", *(session.posargs or ["status"]), external=True)


AGENT_IMAGE_ARM64 = "qwex.local/qwex-agent-arm64:0.1.0"
"""The linux/arm64 agent alone as an image: the test cluster's amd64 node would pick the amd64
agent of the index, so this one shows the arm64 agent copied and run in a pod (under qemu)."""


@nox.session(python=PYTHON)
def agent_image(session: nox.Session) -> None:
    """The agent image (FROM scratch + the agent at /qwex), loaded into the test cluster.

    One OCI image index with the linux/amd64 and linux/arm64 agents under the one tag
    (`qwex agent image --oci-archive`, no daemon needed; the arm64 agent cross-built first
    when missing), so each node takes its own; and the arm64 agent alone under
    AGENT_IMAGE_ARM64 for the tests. Pods get the agent through an init container
    (docs/kubernetes.md). Loading is a no-op when the node has the same archive;
    `-- --no-load` skips the cluster."""
    session.install("-e", "qwex-core", "-e", "qwex-agent")  # not qwex-docker: docs/agent.md
    load = "--no-load" not in session.posargs
    folder = Path(session.create_tmp()).resolve()
    both, arm64 = folder / "qwex-agent.oci.tar", folder / "qwex-agent-arm64.oci.tar"
    platforms = [arg for p in AGENT_PLATFORMS for arg in ("--platform", p)]
    session.run("qwex", "agent", "image", *platforms, "--oci-archive", str(both))
    session.run(
        "qwex",
        "agent",
        "image",
        "--platform",
        "linux/arm64",
        "--tag",
        AGENT_IMAGE_ARM64,
        "--oci-archive",
        str(arm64),
    )
    if load:
        session.run("bash", ".ci/k8s/cluster.sh", "load", str(both), str(arm64), external=True)


SERVER_DISTRIBUTIONS = ["qwex-core", "qwex-agent", "qwex-k8s", "qwex-remote"]
"""What the server image holds: the server and the Kubernetes backend its jobs go to (with the
agent that backend ships into pods); no Docker backend, there is no daemon in a pod."""
SERVER_IMAGE = "qwex.local/qwex-server:0.1.0"


@contextlib.contextmanager
def _replacing(session: nox.Session, tag: str) -> Iterator[None]:
    """Remove the image that had `tag` before a rebuild once the new one has it: `docker
    import` leaves the old one untagged, about 250 MB of each of the two images a CI run.
    The daemon keeps it when a container or another tag still uses it."""

    def image_id() -> str:
        found = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Id}}", tag], capture_output=True, text=True
        )
        return found.stdout.strip() if found.returncode == 0 else ""

    old = image_id()
    yield
    if old and old != image_id():
        removed = subprocess.run(["docker", "image", "rm", old], capture_output=True, text=True)
        if removed.returncode == 0:
            session.log(f"removed the previous {tag} ({old[7:19]})")


def _has_extra(folder: str, distribution: str, extra: str) -> bool:
    """Whether the wheel of `distribution` in `folder` declares the optional `extra`."""
    import zipfile
    from pathlib import Path

    for wheel in Path(folder).glob(f"{distribution}-*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            lines = archive.read(name).decode().splitlines()
            return f"Provides-Extra: {extra}" in lines
    return False


@nox.session(python=PYTHON)
def server_image(session: nox.Session) -> None:
    """The qwex server's image, offline: the project's wheels on a debootstrapped Debian.

    Built by .ci/build-server-image.sh (no registry pull, non-root, `qwex serve` as entrypoint)
    and loaded into the test cluster like the agent image; `-- --no-load` skips the cluster.
    docs/deploy.md runs it with the Helm chart in deploy/helm/qwex-server."""
    import tempfile

    session.install("build", "hatchling>=1.21")
    with tempfile.TemporaryDirectory(prefix="qwex-server-wheels-") as wheels:
        for name in SERVER_DISTRIBUTIONS:
            session.run(
                "python",
                "-m",
                "build",
                "--no-isolation",
                "--wheel",
                "--outdir",
                wheels,
                name,
                silent=True,
            )
        python = session.run("python", "-c", "import sys; print(sys.executable)", silent=True)
        server = (
            "qwex-remote[server]" if _has_extra(wheels, "qwex_remote", "server") else "qwex-remote"
        )
        session.log(f"server image: installing {server} and qwex-k8s")
        with _replacing(session, SERVER_IMAGE):
            session.run(
                "bash",
                ".ci/build-server-image.sh",
                wheels,
                SERVER_IMAGE,
                server,
                "qwex-k8s",
                env={"PYTHON": str(python).strip()},
                external=True,
            )
    if "--no-load" not in session.posargs:
        session.run("bash", ".ci/k8s/cluster.sh", "load", SERVER_IMAGE, external=True)


POSTGRES_IMAGE = "qwex.local/qwex-postgres:15"


@nox.session(python=False)
def postgres_image(session: nox.Session) -> None:
    """PostgreSQL for the Helm tests' two server replicas, offline (Debian's postgresql on a
    debootstrapped minbase, .ci/build-postgres-image.sh), loaded into the test cluster;
    `-- --no-load` skips the cluster."""
    with _replacing(session, POSTGRES_IMAGE):
        session.run("bash", ".ci/build-postgres-image.sh", POSTGRES_IMAGE, external=True)
    if "--no-load" not in session.posargs:
        session.run("bash", ".ci/k8s/cluster.sh", "load", POSTGRES_IMAGE, external=True)


@nox.session(python=PYTHON)
def agent(session: nox.Session) -> None:
    """The self-contained qwex agent for this machine's platform, into the user cache.

    A no-op when the cached agent matches the installed qwex-core sources; `-- --force` rebuilds."""
    session.install("-e", "qwex-core", "-e", "qwex-agent")
    session.run("qwex", "agent", "build", *session.posargs)


AGENT_PLATFORMS = ["linux/amd64", "linux/arm64"]
"""What the qwex-docker-agents wheel carries: this machine's agent built natively, the other
cross-built (`qwex agent build --platform`, needs .ci/setup-arm64.sh's packages)."""


@nox.session(python=PYTHON)
def dist(session: nox.Session) -> None:
    """Every distribution's sdist and wheel into dist/ (emptied first).

    The agents for linux/amd64 and linux/arm64 are built into the qwex-docker-agents package
    first (each a no-op when up to date): this machine's natively, the other cross-built
    from its Debian packages (docs/agent.md)."""
    import shutil

    session.install("-e", "qwex-core", "-e", "qwex-agent", "build", "hatchling>=1.21")
    for platform in AGENT_PLATFORMS:
        folder = f"{AGENTS_PACKAGE}/{platform.replace('/', '-')}"
        session.run("qwex", "agent", "build", "--platform", platform, "--output", folder)
    shutil.rmtree("dist", ignore_errors=True)
    for name in DISTRIBUTIONS:
        session.run("python", "-m", "build", "--no-isolation", "--outdir", "dist", name)


@nox.session(python=PYTHON)
def mutants(session: nox.Session) -> None:
    """Mutation check: cosmic-ray over lifecycle.py, store.py and the agent's supervisor, each
    against the fast tests that exercise it. Not part of `nox`; one core, `-- --budget S`
    bounds each module (default 1800 s; the next run goes on where it stopped), `-- lifecycle`
    runs one. Fails when a mutant of `lifecycle.judge` survives. Mutates a copy of the tree,
    never the checkout."""
    import shutil
    from pathlib import Path

    session.install("cosmic-ray==8.7.0", "pytest>=8", "pytest-timeout")
    tree = Path(session.create_tmp()).resolve() / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", ".qwex", "build", "dist")
    shutil.copytree("qwex-core", tree / "qwex-core", ignore=junk)
    shutil.copytree("tests/core", tree / "tests" / "core", ignore=junk)
    shutil.copytree("docs", tree / "docs")  # some CLI tests check what the docs say
    for name in ("pyproject.toml", "README.md", "tests/conftest.py"):
        shutil.copy(name, tree / name)
    session.install("-e", str(tree / "qwex-core"))
    work = tree.parent / "sessions"
    session.run(
        "python", "tools/mutants.py", "--tree", str(tree), "--work", str(work), *session.posargs
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: prints a table and writes .bench/results.json. Not part of `nox`.

    The packages are installed as users get them (not editable), so bytecode is precompiled."""
    session.install(
        "./qwex-core",
        "./qwex-agent",
        "./qwex-docker",
        "./qwex-k8s",
        "./qwex-remote[server]",
        "./qwex-slurm",
    )
    # Selenium (the remote figure of a line reaching the dashboard) goes beside the venv, not
    # into it: it brings trio, which httpcore imports whenever it is installed, 50 ms of every
    # remote command a user's install does not pay. Only the bench's own process sees it.
    selenium = Path(".nox/bench-selenium").resolve()
    if not (selenium / "selenium").is_dir():
        session.install("--target", str(selenium), "selenium>=4.20")
    session.run(
        "python", "benchmarks/run.py", *session.posargs, env={"QWEX_BENCH_SELENIUM": str(selenium)}
    )
