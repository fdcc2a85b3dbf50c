"""`--gpu N` on this machine: the first N GPUs of the pool, as `CUDA_VISIBLE_DEVICES`.

The pool is `CUDA_VISIBLE_DEVICES` when it is already set (whoever set it, a scheduler or
the user, gave this shell those GPUs), else the NVIDIA GPUs `nvidia-smi -L` lists (by
index), else those /proc/driver/nvidia/gpus holds. Asking for more GPUs than the pool
has is an error before the run is made: a job meant for a GPU would otherwise run, much
slower or not at all, on the CPU. Runs are not kept from sharing a GPU: two runs that
ask for one get the same first one, as two programs started by hand would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

VARIABLE = "CUDA_VISIBLE_DEVICES"
_LISTED = re.compile(r"^GPU (\d+):", re.MULTILINE)


class NotEnoughGpus(Exception):
    """More GPUs were asked for than the pool holds; the message says which and why."""


def pool(env: dict[str, str] | os._Environ[str] = os.environ) -> tuple[list[str], str]:
    """The GPUs a run may be given, and where that list came from (for messages)."""
    given = env.get(VARIABLE)
    if given is not None:
        devices = [d.strip() for d in given.split(",") if d.strip()]
        return devices, f"{VARIABLE}={given}"
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is not None:
        try:
            listed = subprocess.run(
                [nvidia_smi, "-L"], capture_output=True, text=True, timeout=30, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            listed = ""
        found = _LISTED.findall(listed)
        if found:
            return found, "nvidia-smi -L"
    try:
        entries = sorted(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        entries = []
    if entries:
        return [str(i) for i in range(len(entries))], "/proc/driver/nvidia/gpus"
    return [], "nvidia-smi -L lists none and there is no /proc/driver/nvidia/gpus"


def select(count: int, env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The value of `CUDA_VISIBLE_DEVICES` for a run that asks for `count` GPUs."""
    if count == 0:
        return ""
    devices, source = pool(env)
    if len(devices) < count:
        have = (
            f"no GPU on this machine ({source})"
            if not devices
            else f"only {len(devices)} GPU{'s' if len(devices) > 1 else ''} ({source})"
        )
        raise NotEnoughGpus(
            f"--gpu {count} cannot be satisfied: {have}; ask for fewer, or run it on a "
            "backend that has GPUs (-b k8s, -b docker on a GPU host)"
        )
    return ",".join(devices[:count])
