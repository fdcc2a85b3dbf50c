#!/usr/bin/env bash
# Graphviz's `dot` from Debian, which draws the documentation site's pictures while it is built
# (`nox -s docs`, tools/docs_hooks.py). Idempotent; needs root (CI runs as root).
set -euo pipefail
if ! command -v dot >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null
fi
echo "setup-docs: $(dot -V 2>&1)"
