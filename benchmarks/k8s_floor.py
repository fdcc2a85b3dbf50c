"""The floor of a detached `qwex run -b k8s` (a reference row of k8s_bench): no qwex CLI code.

A Python that imports what qwex's CLI cannot do without (click, pydantic, pluggy, and
pydantic's model machinery, which validating a job needs), reads the kubeconfig with
PyYAML (as qwex and kubectl must), connects over TLS through qwex's own transport
(`qwex_k8s.lean`, the standard library's HTTPS), and creates the Job of a file: what
`kubectl create -f` does, from Python. It does not own the snapshot ConfigMap, write a
record or build a job.

    python k8s_floor.py KUBECONFIG NAMESPACE JOB.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click  # noqa: F401
import pluggy  # noqa: F401
import pydantic.main  # noqa: F401
import yaml
from qwex_k8s.lean import from_kubeconfig


def main(kubeconfig: str, namespace: str, job: str) -> None:
    with open(kubeconfig) as fh:
        data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    chosen = next(c for c in data["contexts"] if c["name"] == data["current-context"])
    lean = from_kubeconfig(data, chosen, Path(kubeconfig).resolve().parent)
    if lean is None:
        raise SystemExit("the kubeconfig needs the kubernetes client: no floor for it")
    body = json.loads(Path(job).read_text())
    lean.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
