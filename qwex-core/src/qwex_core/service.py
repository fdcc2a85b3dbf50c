"""Run operations shared by the CLI, the conformance suite and the server.

`RunService` ties the store, the plugin host and the configuration together:
build a job from the configuration, submit it to its backend, read a run and
bring it up to date through its runner (`Runner.refresh`, where `lost` is
decided), cancel, wait, and tell plugins once that a run finished.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_core.agent.record import FINAL_STATUSES, NOTIFIED_FILE
from qwex_core.errors import BackendError, QwexError
from qwex_core.plugin.manager import PluginHost
from qwex_core.store import RunStore, short_id
from qwex_core.timings import mark

if TYPE_CHECKING:
    # Imported where used: `qwex list` and reading final runs need neither pydantic nor the config.
    from qwex_core.config import Key, QwexConfig
    from qwex_core.models import JobSpec, Run
    from qwex_core.run_view import RunView
    from qwex_core.runners.base import Runner

WAIT_ROUND = 1.0
"""Seconds between two looks at the runs `qwex wait` of several waits for (one listing each)."""


class RunService:
    def __init__(
        self, host: PluginHost, config: QwexConfig | Callable[[], QwexConfig], store: RunStore
    ) -> None:
        """`config` may be a loader: it is then resolved when first needed (a runner, a submit)."""
        self.host = host
        self._config = config
        self.store = store
        self._runners: dict[str, Runner] = {}
        self._finished: set[str] = set()

    @property
    def config(self) -> QwexConfig:
        if callable(self._config):
            self._config = self._config()
        return self._config

    def runner(self, backend: str) -> Runner:
        if backend not in self._runners:
            cls = self.host.runner_class(backend)
            with self.guard(backend, "__init__"):
                self._runners[backend] = cls(name=backend, store=self.store, config=self.config)
        return self._runners[backend]

    @contextlib.contextmanager
    def guard(self, backend: str, method: str) -> Iterator[None]:
        """Every call into a runner goes through here: an exception that is not one of
        qwex's own errors (a bug in the backend) becomes one `BackendError` line naming the
        backend, its distribution and the method, never a traceback or an "internal error"."""
        try:
            yield
        except QwexError:
            raise
        except Exception as exc:
            raise self.host.runner_failed(backend, method, exc) from exc

    def job(
        self,
        command: Sequence[str],
        *,
        name: str | None = None,
        cwd: Path | None = None,
        **extra: Any,
    ) -> JobSpec:
        """The job that runs `command` with this project's configuration (see `build_job`)."""
        from qwex_core.jobs import build_job

        return build_job(
            self.config, command, project_dir=self.store.project_dir, name=name, cwd=cwd, **extra
        )

    def submit(self, spec: JobSpec) -> Run:
        """Create the run record and start it on its backend. A start failure is recorded
        as `failed` with the backend's message as the reason, then raised."""
        runner = self.runner(spec.backend)
        self.host.prepare_job(spec, self.config)
        if spec.secret_env:
            _check_secret_env(spec, runner)
        check_workers(spec, runner)
        runner.validate(spec)
        run = self.store.create(spec)
        mark("record-created")
        try:
            runner.start(run)
        except BaseException as exc:
            from qwex_core.models import RunStatus

            reason = str(exc) if isinstance(exc, QwexError) else f"{type(exc).__name__}: {exc}"
            current = self.store.load(run.id)
            if not current.is_final:
                self.notify_final(self.store.record_end(current, RunStatus.FAILED, reason))
            if isinstance(exc, QwexError):
                raise QwexError(f"run {short_id(run.id)} failed to start: {exc}") from None
            if isinstance(exc, Exception):  # a bug in the backend: name it, not "internal error"
                origin = self.host.runners[spec.backend].plugin.origin
                raise BackendError(
                    f"run {short_id(run.id)} failed to start: the {spec.backend} backend ({origin}) "
                    f"raised {reason}"
                ) from None
            raise
        runner.started(run)
        mark("backend-started")
        return run

    def get(self, prefix: str) -> Run:
        return self.observe(self.store.resolve(prefix))

    def observe(self, run_id: str) -> Run:
        """Read a run as it is now; the first process to see it final tells the plugins."""
        return self._observed(self.store.load(run_id))

    def observe_many(self, run_ids: Sequence[str]) -> list[Run]:
        """Several runs as they are now, each as `observe` reads it, in the given order. A
        backend with more than one of them live is asked once for all (`Runner.prefetch`)
        first, so that bringing them up to date costs what one listing costs, not requests
        per run (`qwex status A B ...`, each round of `qwex wait` of several)."""
        runs = [self.store.load(run_id) for run_id in run_ids]
        live = Counter(run.backend for run in runs if not run.is_final)
        for backend, count in live.items():
            if count > 1:
                self._prefetch(backend)
        return [self._observed(run) for run in runs]

    def _observed(self, run: Run) -> Run:
        run = self.refresh(run)
        return self.notify_final(run) if run.is_final else run

    def final_view(self, run_id: str) -> RunView | None:
        """What the CLI shows of a final run the plugins have been told of, read without
        building the model (see `qwex_core.run_view`); None when the run is not final yet,
        nobody has told the plugins (the first look does, through `observe`), or its
        record is not in the form qwex writes: `observe` then reads it (and says what is
        wrong with it)."""
        from qwex_core.run_view import final_view

        if not self._notified(run_id):
            return None
        try:
            return final_view(self.store.read(run_id))
        except QwexError:
            return None

    def refresh(self, run: Run) -> Run:
        """The run as it is now, asking its backend when the record is not final."""
        if run.is_final:
            return run
        try:
            runner = self.runner(run.backend)
        except BackendError:
            return run  # its backend is not installed here: show the record as it stands
        with self.guard(run.backend, "refresh"):
            current = runner.refresh(run)
        return self.notify_final(current) if current.is_final else current

    def list(
        self,
        *,
        statuses: Collection[str] | None = None,
        backends: set[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[Run]:
        """Runs newest first, each brought up to date when not final."""
        from qwex_core.models import Run

        for record in self.list_records(statuses=statuses, backends=backends, limit=limit):
            yield Run.model_validate(record)

    def list_records(
        self,
        *,
        statuses: Collection[str] | None = None,
        backends: set[str] | None = None,
        limit: int | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
        unreadable: bool = False,
        on_problem: Callable[[Run, BackendError], None] | None = None,
        rows: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Like `list`, as JSON-ready records: final records are passed on as stored, without
        building a model, which keeps `qwex list` fast with thousands of runs. `where` filters
        further; with `unreadable`, a run whose record cannot be read comes as an
        `unreadable` row naming the file (see `store.unreadable_record`) instead of being
        left out. With `on_problem`, a run whose backend cannot bring it up to date (a
        refused token, say) is passed to it and listed as its record stands, so one run
        never hides the others. With `rows`, a final run may come as the fields `qwex list`
        shows and filters on (see `RunStore.iter_records`)."""
        from qwex_core.agent.record import UNREADABLE
        from qwex_core.row_cache import CachedRow
        from qwex_core.store import unreadable_record

        wanted = {str(s) for s in statuses} if statuses is not None else None
        count = 0
        prefetched: set[str] = set()
        for record in self.store.iter_records(backends=backends, unreadable=unreadable, rows=rows):
            status = record.get("status")
            if status != UNREADABLE and status not in FINAL_STATUSES:
                from pydantic import ValidationError

                from qwex_core.models import Run

                try:
                    run = Run.model_validate(record)
                except ValidationError as exc:
                    if not unreadable:
                        continue
                    path = self.store.run_dir(str(record.get("id"))) / "run.json"
                    problem = exc.errors()[0]["msg"] if exc.errors() else "invalid"
                    record = unreadable_record(str(record.get("id")), f"{path}: {problem}")
                else:
                    if run.backend not in prefetched:  # many live runs: one look for all
                        prefetched.add(run.backend)
                        self._prefetch(run.backend)
                    try:
                        record = self.refresh(run).model_dump(mode="json")
                    except BackendError as exc:
                        if on_problem is None:
                            raise
                        on_problem(run, exc)
            elif (
                status in FINAL_STATUSES
                and not isinstance(record, CachedRow)  # cached: the plugins were told
                and not self._notified(str(record.get("id")))
            ):
                record = self._first_to_see_the_end(record)
            if wanted is not None and record.get("status") not in wanted:
                continue
            if where is not None and not where(record):
                continue
            yield record
            count += 1
            if limit is not None and count >= limit:
                return

    def _prefetch(self, backend: str) -> None:
        try:
            runner = self.runner(backend)
        except BackendError:
            return
        try:
            with self.guard(backend, "prefetch"):
                runner.prefetch()
        except BackendError as exc:  # each run is then looked at on its own
            self.host.warn(str(exc))

    def _notified(self, run_id: str) -> bool:
        # A string path: `qwex list` asks this of every final run it lists.
        return os.path.exists(f"{self.store.root}/{run_id}/{NOTIFIED_FILE}")

    def _first_to_see_the_end(self, record: dict[str, Any]) -> dict[str, Any]:
        """A final record nobody has told the plugins of (a detached run that ended with
        nobody watching): apply `explain` and the end hooks now, as `status` would."""
        from pydantic import ValidationError

        from qwex_core.models import Run

        try:
            run = Run.model_validate(record)
        except ValidationError:
            return record
        return self.notify_final(run).model_dump(mode="json")

    def cancel(
        self, run: Run, *, reason: str = "cancelled by user", interrupt: bool = False
    ) -> Run:
        if run.is_final:
            return run
        runner = self.runner(run.backend)
        with self.guard(run.backend, "cancel"):
            runner.cancel(run, reason=reason, interrupt=interrupt)
        current = self.store.load(run.id)
        return self.notify_final(current) if current.is_final else current

    def kill(self, run: Run, *, reason: str = "cancelled by user") -> Run:
        """Cancel with no grace period: the agent, asked twice, kills the command's process
        tree at once (SIGKILL), as `docker rm -f`. Two different signals (SIGINT, then
        SIGTERM), so that they can never merge into one on the way."""
        current = self.cancel(run, reason=reason, interrupt=True)
        if current.is_final:
            return current
        return self.cancel(current, reason=reason)

    def wait(self, run: Run, timeout: float | None = None, poll: float = 0.05) -> Run:
        """Block until the run is final (or `timeout` seconds pass); return its record."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.observe(run.id)
            if run.is_final or (deadline is not None and time.monotonic() >= deadline):
                return run
            self.wait_for_change(run, poll)

    def wait_each(self, run_ids: Sequence[str], poll: float = 0.05) -> Iterator[Run]:
        """Block until every run is final; yield each final record in the given order, as
        soon as it and those before it have ended. One run is followed as `wait` follows it;
        several are looked at together (`observe_many`) each round, so that waiting for
        many costs one listing a round, not a follower (a watch, a log stream) per run. A
        round lasts `poll` seconds, `WAIT_ROUND` while a backend that lists (`prefetch`)
        has runs among them."""
        if len(set(run_ids)) == 1:
            final = self.wait(self.observe(run_ids[0]))
            yield from (final for _ in run_ids)
            return
        ended: dict[str, Run] = {}
        told = 0
        while True:
            pending = [i for i in dict.fromkeys(run_ids) if i not in ended]
            runs = self.observe_many(pending)
            ended.update((run.id, run) for run in runs if run.is_final)
            while told < len(run_ids) and run_ids[told] in ended:
                yield ended[run_ids[told]]
                told += 1
            if told == len(run_ids):
                return
            live = {run.backend for run in runs if not run.is_final}
            time.sleep(WAIT_ROUND if any(self._lists(b) for b in live) else poll)

    def _lists(self, backend: str) -> bool:
        """Whether `backend` answers many runs from one listing (`Runner.prefetch`)."""
        from qwex_core.runners.base import Runner

        try:
            runner = self.runner(backend)
        except BackendError:
            return False
        return type(runner).prefetch is not Runner.prefetch

    def wait_for_change(self, run: Run, seconds: float) -> None:
        """Wait up to `seconds` for `run` to change: its runner may return early (a child
        that exits, a watch event); a run whose backend is not installed here is re-read."""
        try:
            runner = self.runner(run.backend)
        except BackendError:
            time.sleep(seconds)
            return
        with self.guard(run.backend, "wait_for_change"):
            runner.wait_for_change(run, seconds)

    def notify_final(self, run: Run) -> Run:
        """Once per run across all processes: let the runner refine the reason and clean
        up, then tell the plugins. Returns the record as it is afterwards."""
        if run.id in self._finished:
            return run
        self._finished.add(run.id)
        try:
            fd = os.open(
                self.store.run_dir(run.id) / NOTIFIED_FILE,
                os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                0o644,
            )
        except FileExistsError:
            return run
        except OSError:  # a folder this user may read but not write: its owner's qwex tells
            return run
        os.close(fd)
        try:
            run = self._explain_and_clean_up(run)
        finally:  # whatever the backend did, plugins hear of the end
            self.host.run_finished(run)
        return run

    def _explain_and_clean_up(self, run: Run) -> Run:
        """The runner's better reason and clean-up; a backend failing at either is named in
        a warning and the end stays recorded as it is."""
        try:
            runner = self.runner(run.backend)
        except QwexError:
            return run  # its backend is not installed here
        try:
            with self.guard(run.backend, "explain"):
                better = runner.explain(run)
            status, reason = better if isinstance(better, tuple) else (run.status.value, better)
            if reason and (reason != run.reason or status != run.status.value):
                run = self.store.record_end(run, status, reason)
        except QwexError as exc:
            self.host.warn(str(exc))
        try:
            with self.guard(run.backend, "cleanup"):
                runner.cleanup(run)
        except QwexError as exc:
            self.host.warn(str(exc))
        return run


def _check_secret_env(spec: JobSpec, runner: Runner) -> None:
    """Secret env only for a runner that keeps it out of its records, with names a process
    can be given (checked here, not by a validator: a validation error would show values)."""
    from qwex_core.errors import SpecError
    from qwex_core.models import check_env_name

    if not runner.accepts_secret_env:
        raise SpecError(
            f"the {spec.backend} backend does not say it keeps secret environment out of "
            "its records (Runner.accepts_secret_env), so it gets no job with secrets; "
            "use a backend that does (local, docker, k8s)"
        )
    for name in spec.secret_env:
        try:
            check_env_name(name)
        except ValueError as exc:
            raise SpecError(str(exc)) from None


def open_service(
    project_dir: Path | None = None,
    *,
    host: PluginHost | None = None,
    profile: str | None = None,
    flags: dict[Key, tuple[Any, str]] | None = None,
) -> RunService:
    """The service for a project, with its configuration resolved."""
    from qwex_core.paths import find_project_dir
    from qwex_core.plugin.pydantic_plugins import answer_without_metadata

    project_dir = project_dir or find_project_dir()
    plugins = host or PluginHost()
    answer_without_metadata()  # before any model validates: a live run's record comes first

    def config() -> QwexConfig:
        from qwex_core.config import load_config

        return load_config(project_dir, plugins.config_sections, profile=profile, flags=flags)

    return RunService(plugins, config, RunStore(project_dir))


def check_workers(spec: JobSpec, runner: Runner) -> None:
    """Refuse `--nodes` or `--array` to a backend that cannot run them, and both at once."""
    from qwex_core.errors import SpecError

    if spec.nodes > 1 and spec.array is not None:
        raise SpecError("--nodes and --array do not go together: run an array of 1-worker tasks")
    if spec.procs_per_node > 1 and spec.nodes == 1 and spec.array is not None:
        raise SpecError("--procs-per-node is for --nodes runs, not arrays")
    if (spec.nodes > 1 or spec.array is not None) and not runner.runs_workers:
        what = f"--nodes {spec.nodes}" if spec.nodes > 1 else f"--array {spec.array}"
        raise SpecError(
            f"the {runner.name} backend cannot run {what}: use a backend that runs workers "
            "(local, docker, k8s)"
        )
