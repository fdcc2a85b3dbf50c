"""The agent's build figures (issue 25): the cross-built linux/arm64 agent against this
machine's native one, in time and in size.

Build time: `qwex agent build --platform linux/arm64 --force` (cross gcc, the arm64 Debian
packages already fetched, the smoke test under qemu) against its twin `qwex agent build
--force` (this machine's platform), alternated sample by sample. Size: bytes on disk of
the two bundles. Needs .ci/setup-arm64.sh's packages; `nox -s bench -- agent`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QWEX = str(Path(sys.executable).parent / "qwex")
OTHER = {"x86_64": "linux/arm64", "aarch64": "linux/amd64"}


def build(out: Path, platform: str | None) -> float:
    argv = [QWEX, "agent", "build", "--force", "--output", str(out)]
    argv += ["--platform", platform] if platform else []
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def size(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file())


def main(repeat: int = 5) -> list[dict[str, Any]]:
    other = OTHER.get(os.uname().machine)
    if other is None:
        print("agent figures skipped: no cross build from this machine", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory() as tmp:
        native, cross = Path(tmp) / "native", Path(tmp) / "cross"
        try:
            build(cross, other)  # also fetches the target's packages, once
        except subprocess.CalledProcessError as exc:
            print(f"agent figures skipped: {exc.stderr.decode()[-300:]}", file=sys.stderr)
            return []
        build(native, None)
        ours, theirs = [], []
        for _ in range(repeat):
            ours.append(build(cross, other))
            theirs.append(build(native, None))
        cross_s, native_s = statistics.median(ours), statistics.median(theirs)
        cross_b, native_b = size(cross), size(native)
    return [
        {
            "figure": f"agent: cross build for {other} vs this machine's build",
            "value": round(cross_s / native_s, 2),
            "target": None,
            "unit": "x twin",
            "ms": round(cross_s * 1000),
            "twin": "qwex agent build --force",
            "twin_ms": round(native_s * 1000),
        },
        {
            "figure": f"agent: {other} bundle size vs this machine's ({native_b >> 20} MiB)",
            "value": round(cross_b / native_b, 3),
            "target": None,
            "unit": "x size",
        },
    ]


if __name__ == "__main__":
    for row in main(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        print(row)
