#!/usr/bin/env bash
# Build Helm from its Go module, once per machine, for the server's chart (deploy/helm) and its
# tests: like build.sh, no release download, the result in $QWEX_HELM_BIN (a folder keyed by the
# version, outside the checkout, next to the cluster's binaries); a second run is a no-op.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.sh"

if [ -f "$QWEX_HELM_BIN/.complete" ]; then
    echo "helm: cached in $QWEX_HELM_BIN"
    exit 0
fi
# The same Go caches as the cluster's binaries.
export GOMODCACHE="$QWEX_K8S_CACHE/go/mod" GOCACHE="$QWEX_K8S_CACHE/go/build"
export GOFLAGS="-buildvcs=false -mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0
work="$QWEX_K8S_CACHE/work/helm-$HELM_VERSION"
out="$QWEX_HELM_BIN.partial"
rm -rf "$out" "$work" && mkdir -p "$out" "$work"
t0=$SECONDS
say() { echo "[build $((SECONDS - t0))s] $*"; }

# A wrapper module requiring helm at its version: `go build` of its cmd/helm with the version
# stamped the way helm's Makefile does (the proxy records no commit: gitCommit stays empty).
say "helm $HELM_VERSION"
cd "$work"
go mod init qwex.test/helm-build >/dev/null 2>&1
hcommit="$(go mod download -json "helm.sh/helm/v4@$HELM_VERSION" | jq -r '.Origin.Hash // ""')"
go get "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" 2>&1 | { grep -v '^go: downloading' || true; }
go build -trimpath -o "$out/helm" -ldflags "-s -w \
    -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION \
    -X helm.sh/helm/v4/internal/version.metadata= \
    -X helm.sh/helm/v4/internal/version.gitCommit=$hcommit \
    -X helm.sh/helm/v4/internal/version.gitTreeState=clean" helm.sh/helm/v4/cmd/helm

[ -s "$out/helm" ] || { echo "missing $out/helm" >&2; exit 1; }
touch "$out/.complete"
rm -rf "$QWEX_HELM_BIN" && mv "$out" "$QWEX_HELM_BIN"
say "done: $QWEX_HELM_BIN"
"$QWEX_HELM_BIN/helm" version
