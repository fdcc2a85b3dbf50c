"""A cgroup for a local run, where this machine lets qwex make one; why not, where not.

`plan` looks (writing nothing) for where each limit can go: cgroup v1 (one hierarchy per
controller: a child of this process's own cgroup in each) or cgroup v2 (one child of the
nearest cgroup, from this process's own up, that has the controllers enabled for its
children or may have them, and that this user can write: v2 lets no cgroup but the root
hold processes and enable controllers for children at once, so a cgroup with processes
in it, like the one qwex runs in, is never the parent). `make` creates the folders,
named `qwex-run-<short id>` so that a person can match them to the run, and writes the
limits; the agent moves the command in (`qwex_core.agent.cgroup.enter`) and removes the
folders once the run has ended (`qwex_core.agent.cgroup.remove`).

Written by hand: the PyPI packages for cgroups either know v1 only (cgroupspy) or are
unmaintained, none does the v2 delegation rules, and the agent half must stay standard
library; what is done here is a handful of reads and writes of cgroup files.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from dataclasses import dataclass, field
from pathlib import PurePosixPath

CPU_PERIOD_US = 100_000
"""The scheduler period the CPU quota is a share of (the kernel's default, as Docker's)."""
MIN_QUOTA_US = 1_000
"""The smallest quota the kernel accepts."""
LIMITED = ("memory", "cpu")
"""The controllers a request may need, in the order the flags are named."""


@dataclass(frozen=True)
class Request:
    """The limits a run asks for: `cpu` cores and `memory` bytes (with its text, for messages)."""

    cpu: float | None = None
    memory: int | None = None
    memory_text: str | None = None

    def controllers(self) -> list[str]:
        wanted = {"memory": self.memory is not None, "cpu": self.cpu is not None}
        return [name for name in LIMITED if wanted[name]]

    def flag(self, controller: str) -> str:
        """How the user asked for what `controller` enforces: `--memory 64Mi`, `--cpu 0.5`."""
        if controller == "memory":
            return f"--memory {self.memory_text or self.memory}"
        return f"--cpu {self.cpu:g}"


@dataclass
class Place:
    """One cgroup folder to make under `parent`, enforcing `controllers` with `writes`
    ((file, value, required): an optional file, absent on this kernel, is skipped)."""

    parent: str
    controllers: list[str]
    writes: list[tuple[str, str, bool]] = field(default_factory=list)
    enable: list[str] = field(default_factory=list)
    """v2: controllers to enable in the parent's `cgroup.subtree_control` first."""
    accounting_only: bool = False
    """A v1 `cpuacct` hierarchy of its own: no limit, the run's CPU time (not required)."""


@dataclass
class Plan:
    """Where each limit goes, and why the others cannot be enforced: `refused` maps a
    reason (a template with `{what}`, the controllers it names) to its controllers."""

    places: list[Place] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)

    def refuse(self, reason: str, controller: str) -> None:
        self.refused.setdefault(reason, []).append(controller)


@dataclass(frozen=True)
class _Mount:
    point: str
    root: str
    version: int
    controllers: frozenset[str]


def _unescape(text: str) -> str:
    """mountinfo writes a space as `\\040` (and tab, newline, backslash likewise)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def _mounts(mountinfo: str) -> list[_Mount]:
    """The cgroup file systems mounted here, as /proc/self/mountinfo lists them."""
    found = []
    try:
        with open(mountinfo) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or len(fields) < 5:
            continue
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        if fstype not in ("cgroup", "cgroup2"):
            continue
        point = _unescape(fields[4])
        if not os.path.exists(os.path.join(point, "cgroup.procs")):
            continue  # hidden under another mount
        version = 2 if fstype == "cgroup2" else 1
        found.append(_Mount(point, _unescape(fields[3]), version, frozenset(options)))
    return found


def _own(cgroup_file: str) -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under "" its v2 path."""
    paths: dict[str, str] = {}
    try:
        with open(cgroup_file) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _folder(mount: _Mount, path: str) -> str:
    """The folder of cgroup `path` (as /proc/self/cgroup names it) in `mount`."""
    root = mount.root.rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    folder = os.path.join(mount.point, path.lstrip("/")).rstrip("/")
    return folder if os.path.isdir(folder) else mount.point


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _writable(folder: str) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _not_writable() -> str:
    if os.geteuid() == 0:
        return (
            "the cgroup {what} {are} read-only here "
            "(a container's cgroups are, unless it is given its own)"
        )
    return (
        f"the cgroup {{what}} {{are}} not writable by user {_user()} "
        "(run as root or with a delegated cgroup)"
    )


def _read_words(path: str) -> set[str]:
    try:
        with open(path) as fh:
            return set(fh.read().split())
    except OSError:
        return set()


def _limit_writes(request: Request, controller: str, version: int) -> list[tuple[str, str, bool]]:
    if controller == "memory":
        assert request.memory is not None
        if version == 1:  # memsw too, so that swap does not hide an overrun
            value = str(request.memory)
            return [
                ("memory.limit_in_bytes", value, True),
                ("memory.memsw.limit_in_bytes", value, False),
            ]
        return [("memory.max", str(request.memory), True), ("memory.swap.max", "0", False)]
    assert request.cpu is not None
    quota = max(MIN_QUOTA_US, round(request.cpu * CPU_PERIOD_US))
    if version == 1:
        return [
            ("cpu.cfs_period_us", str(CPU_PERIOD_US), True),
            ("cpu.cfs_quota_us", str(quota), True),
        ]
    return [("cpu.max", f"{quota} {CPU_PERIOD_US}", True)]


def plan(
    request: Request,
    *,
    cgroup_file: str = "/proc/self/cgroup",
    mountinfo: str = "/proc/self/mountinfo",
) -> Plan:
    """Where `request`'s limits can go on this machine, writing nothing."""
    result = Plan()
    wanted = request.controllers()
    if not wanted:
        return result
    mounts = _mounts(mountinfo)
    own = _own(cgroup_file)
    v2 = next((m for m in mounts if m.version == 2), None)
    v2_wanted = []
    for controller in wanted:
        v1 = next((m for m in mounts if m.version == 1 and controller in m.controllers), None)
        if v1 is not None:
            parent = _folder(v1, own.get(controller, "/"))
            if not _writable(parent):
                result.refuse(_not_writable(), controller)
                continue
            result.places.append(Place(parent, [controller], _limit_writes(request, controller, 1)))
            if controller == "cpu" and "cpuacct" not in v1.controllers:
                acct = next(
                    (m for m in mounts if m.version == 1 and "cpuacct" in m.controllers), None
                )
                if acct is not None:
                    acct_parent = _folder(acct, own.get("cpuacct", "/"))
                    if _writable(acct_parent):
                        result.places.append(Place(acct_parent, ["cpuacct"], accounting_only=True))
        elif v2 is not None and controller in _read_words(
            os.path.join(v2.point, "cgroup.controllers")
        ):
            v2_wanted.append(controller)
        elif v2 is not None:
            result.refuse(f"cgroup v2 at {_literal(v2.point)} offers no {{what}}", controller)
        else:
            result.refuse(
                "no cgroup file system with the {what} is mounted on this machine", controller
            )
    if v2_wanted and v2 is not None:
        _plan_v2(request, v2, own.get("", "/"), v2_wanted, result)
    return result


def _plan_v2(request: Request, mount: _Mount, path: str, wanted: list[str], result: Plan) -> None:
    """The nearest cgroup, from this process's own up, that can be the parent of the run's:
    one with `wanted` enabled for its children, or with no process in it (and `wanted`
    available) where they can be enabled; writable by this user."""
    folder = PurePosixPath(_folder(mount, path))
    top = PurePosixPath(mount.point)
    while True:
        if not _writable(str(folder)):
            break
        enabled = _read_words(str(folder / "cgroup.subtree_control"))
        available = _read_words(str(folder / "cgroup.controllers"))
        is_root = folder == top and not os.path.exists(folder / "cgroup.type")
        empty = not _read_words(str(folder / "cgroup.procs"))
        if set(wanted) <= enabled or (set(wanted) <= available and (empty or is_root)):
            writes = [w for c in wanted for w in _limit_writes(request, c, 2)]
            enable = [c for c in wanted if c not in enabled]
            result.places.append(Place(str(folder), list(wanted), writes, enable))
            return
        if folder == top:
            break
        folder = folder.parent
    for controller in wanted:
        result.refuse(_not_writable(), controller)


def make(plan: Plan, name: str) -> list[str]:
    """Create the planned cgroups `name` and write their limits; returns their folders.

    What cannot be made after all (a write refused) moves from the plan's places to its
    refusals, with what the kernel said, and what was made of it is removed."""
    made: list[str] = []
    for place in list(plan.places):
        folder = os.path.join(place.parent, name)
        try:
            if place.enable:
                _write(
                    os.path.join(place.parent, "cgroup.subtree_control"),
                    " ".join(f"+{c}" for c in place.enable),
                )
            os.mkdir(folder, 0o755)  # never one that exists: it is not this run's
        except OSError as exc:
            _drop(plan, place, _literal(f"cannot make a cgroup in {place.parent} ({exc.strerror})"))
            continue
        try:
            for file, value, required in place.writes:
                path = os.path.join(folder, file)
                if required or os.path.exists(path):
                    _write(path, value)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.rmdir(folder)
            _drop(plan, place, _literal(f"cannot write {exc.filename} ({exc.strerror})"))
            continue
        made.append(folder)
    return made


def _drop(plan: Plan, place: Place, reason: str) -> None:
    plan.places.remove(place)
    if not place.accounting_only:
        for controller in place.controllers:
            plan.refuse(reason, controller)


def _literal(text: str) -> str:
    """`text` (a path, an error) as a reason template: its braces are not placeholders."""
    return text.replace("{", "{{").replace("}", "}}")


def _write(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def notes(request: Request, plan: Plan) -> list[str]:
    """One line per reason, naming the flags it leaves unenforced and why."""
    lines = []
    for reason, controllers in plan.refused.items():
        named = sorted(controllers, key=LIMITED.index)
        plural = len(named) > 1
        what = " and ".join(named) + (" controllers" if plural else " controller")
        flags = ", ".join(request.flag(c) for c in named)
        text = reason.format(what=what, are="are" if plural else "is")
        lines.append(f"{flags} {'are' if plural else 'is'} not enforced: {text}")
    return lines
