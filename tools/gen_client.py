"""Regenerate the API client of qwex-remote safely (`nox -s gen`), or check it is current
(`nox -s gen_check`).

`gen`: export the spec from the app, generate the client into a temporary directory,
compile it, swap it in (the old client kept aside), import every module and run the
adapter's tests against it; on any failure the old client and spec are put back byte for
byte. `check`: generate into a temporary directory and compare with what is committed.

The generated code is kept exactly as openapi-python-client writes it (no formatter:
`post_hooks: []`), so the same spec and generator give the same bytes.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

GENERATOR_VERSION = "0.29.1"
"""openapi-python-client; the noxfile installs this one (another writes other bytes)."""
BACKUP_PREFIX = ".client-backup-"


class GenError(Exception):
    """A step failed; the message says which and what to do."""


@dataclass(frozen=True)
class Layout:
    """Where the spec, the generator's config, the client and the adapter's tests live."""

    root: Path

    @property
    def src(self) -> Path:
        return self.root / "qwex-remote" / "src"

    @property
    def spec(self) -> Path:
        return self.root / "qwex-remote" / "openapi.json"

    @property
    def config(self) -> Path:
        return self.root / "qwex-remote" / "openapi-client.yaml"

    @property
    def client(self) -> Path:
        return self.src / "qwex_remote" / "client"

    @property
    def adapter_tests(self) -> Path:
        return self.root / "tests" / "remote" / "test_adapter.py"

    def env(self) -> dict[str, str]:
        """The environment of each step: `qwex_remote` is this layout's copy."""
        path = os.pathsep.join(p for p in (str(self.src), os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, "PYTHONPATH": path}

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))


def _run(args: Sequence[str], layout: Layout, what: str, *, tail: int = 30) -> str:
    result = subprocess.run(
        list(args), cwd=layout.root, env=layout.env(), capture_output=True, text=True
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        shown = "\n".join(f"  {line}" for line in output[-tail:])
        raise GenError(f"{what} failed (exit {result.returncode}):\n{shown}")
    return result.stdout


def check_generator() -> None:
    try:
        found = version("openapi-python-client")
    except PackageNotFoundError:
        found = "none"
    if found != GENERATOR_VERSION:
        raise GenError(
            f"openapi-python-client {GENERATOR_VERSION} is needed, {found} is installed; "
            "use `nox -s gen` / `nox -s gen_check`, which install it"
        )


def export_spec(layout: Layout) -> str:
    """The app's OpenAPI document, as `python -m qwex_remote.server.openapi` prints it."""
    return _run(
        [sys.executable, "-m", "qwex_remote.server.openapi"],
        layout,
        "exporting the spec from the app (python -m qwex_remote.server.openapi)",
    )


def generate(layout: Layout, spec: str, out: Path) -> Path:
    """The client generated from `spec` into `out/client` (a fresh directory)."""
    spec_file = out / "openapi.json"
    spec_file.write_text(spec, encoding="utf-8")
    target = out / "client"
    _run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec_file),
            "--config",
            str(layout.config),
            "--meta",
            "none",
            "--fail-on-warning",
            "--output-path",
            str(target),
        ],
        layout,
        "openapi-python-client (the spec is invalid or uses what it cannot generate)",
    )
    if not (target / "__init__.py").is_file():
        raise GenError(f"openapi-python-client wrote no package into {target}")
    return target


def _files(folder: Path) -> dict[str, Path]:
    return {
        p.relative_to(folder).as_posix(): p
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def differences(old: Path, new: Path) -> list[str]:
    """Files (relative paths) that differ in content or exist on one side only."""
    a, b = _files(old), _files(new)
    return sorted(
        name
        for name in a.keys() | b.keys()
        if name not in a or name not in b or a[name].read_bytes() != b[name].read_bytes()
    )


def verify(layout: Layout) -> None:
    """The swapped-in client imports module by module, and the adapter's tests pass."""
    _run(
        [
            sys.executable,
            "-c",
            "import importlib, pkgutil, qwex_remote.client as c\n"
            "for m in pkgutil.walk_packages(c.__path__, c.__name__ + '.'):\n"
            "    importlib.import_module(m.name)\n",
        ],
        layout,
        "importing every module of the new client",
    )
    _run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(layout.adapter_tests),
            "-x",
            "-q",
            "--tb=short",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(layout.root),
        ],
        layout,
        f"the adapter's tests ({layout.rel(layout.adapter_tests)}) against the new client",
    )


def gen(layout: Layout, spec: str | None = None) -> list[str]:
    """Regenerate the client (from `spec`, default: exported from the app); the changed
    files. On any failure the old client and spec stay as they were."""
    check_generator()
    stale = sorted(layout.client.parent.glob(BACKUP_PREFIX + "*"))
    if stale:
        raise GenError(
            f"an interrupted `nox -s gen` left the old client in {layout.rel(stale[0])}: "
            f"move it back to {layout.rel(layout.client)} or delete it, then run again"
        )
    text = export_spec(layout) if spec is None else spec
    with tempfile.TemporaryDirectory(prefix="qwex-gen-") as tmp:
        new = generate(layout, text, Path(tmp))
        if not compileall.compile_dir(new, quiet=2, force=True):
            raise GenError("the generated client does not compile (see above)")
        for cache in list(new.rglob("__pycache__")):
            shutil.rmtree(cache)
        changed = differences(layout.client, new)
        old_spec = layout.spec.read_bytes() if layout.spec.exists() else None
        backup = Path(tempfile.mkdtemp(prefix=BACKUP_PREFIX, dir=layout.client.parent))
        try:
            layout.client.rename(backup / "client")
            shutil.copytree(new, layout.client)
            layout.spec.write_text(text, encoding="utf-8")
            verify(layout)
        except BaseException:
            shutil.rmtree(layout.client, ignore_errors=True)
            (backup / "client").rename(layout.client)
            if old_spec is None:
                layout.spec.unlink(missing_ok=True)
            else:
                layout.spec.write_bytes(old_spec)
            backup.rmdir()
            raise
        shutil.rmtree(backup)
    if layout.spec.read_bytes() != old_spec:
        changed.append("(openapi.json)")
    return changed


def check(layout: Layout) -> list[str]:
    """What is stale: the committed spec against the app's, the committed client against
    one generated from the app's spec."""
    check_generator()
    text = export_spec(layout)
    stale = []
    if not layout.spec.exists() or layout.spec.read_text(encoding="utf-8") != text:
        stale.append(f"{layout.rel(layout.spec)} differs from what the app exports")
    with tempfile.TemporaryDirectory(prefix="qwex-gen-check-") as tmp:
        new = generate(layout, text, Path(tmp))
        stale += [
            f"{layout.rel(layout.client)}/{name} differs from what the generator writes"
            for name in differences(layout.client, new)
        ]
    return stale


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["gen", "check"])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument(
        "--spec", type=Path, help="generate from this document instead of the app's (gen only)"
    )
    args = parser.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):  # a killed run puts the old client back too
        signal.signal(signum, _exit_on_signal)
    layout = Layout(args.root.resolve())
    try:
        if args.command == "check":
            stale = check(layout)
            if stale:
                print("error: the generated API client is stale:", file=sys.stderr)
                for line in stale:
                    print(f"  {line}", file=sys.stderr)
                print("run `nox -s gen` and commit the result", file=sys.stderr)
                return 1
            print("the spec and the generated client are current")
            return 0
        spec = args.spec.read_text(encoding="utf-8") if args.spec else None
        changed = gen(layout, spec)
    except (GenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.command == "gen":
            print(
                f"the client ({layout.rel(layout.client)}) and {layout.rel(layout.spec)} "
                "are unchanged",
                file=sys.stderr,
            )
        return 1
    if changed:
        print(f"regenerated the client; changed: {', '.join(changed)}")
    else:
        print("regenerated the client: nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
