#!/usr/bin/env bash
# Build the test cluster's binaries from their Go modules, once per machine:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl, Kueue,
# plus the pause binary of the sandbox image. The result goes to $QWEX_K8S_BIN (a folder
# keyed by the versions, outside the checkout); a second run with it in place is a no-op.
# Helm, for the server's chart, is built in the same step by build-helm.sh (its own key).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.sh"

want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kueue pause
      kueue-crds.yaml)
if [ -f "$QWEX_K8S_BIN/.complete" ]; then
    echo "k8s binaries: cached in $QWEX_K8S_BIN"
    exec bash "$here/build-helm.sh"
fi

# Go's caches live next to the binaries so that a rebuild after a version bump is warm.
export GOMODCACHE="$QWEX_K8S_CACHE/go/mod" GOCACHE="$QWEX_K8S_CACHE/go/build"
export GOFLAGS="-buildvcs=false -mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0
work="$QWEX_K8S_CACHE/work"
out="$QWEX_K8S_BIN.partial"
rm -rf "$out" && mkdir -p "$out" "$work"
t0=$SECONDS
say() { echo "[build $((SECONDS - t0))s] $*"; }

# The git commit of a module version, from the proxy's .info (empty when not recorded).
commit_of() { go mod download -json "$1" | jq -r '.Origin.Hash // ""'; }

# --- Kubernetes ------------------------------------------------------------------------------
# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging
# paths, so neither `go install` nor a plain require works: a wrapper module replaces each
# staging module with its published v0.Y.Z twin. The list is generated from the real go.mod
# because it changes between minors.
say "kubernetes $K8S_VERSION: module graph"
kw="$work/kubernetes-$K8S_VERSION"
rm -rf "$kw" && mkdir -p "$kw" && cd "$kw"
go mod init qwex.test/k8s-build >/dev/null 2>&1
kgomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .GoMod)"
kcommit="$(commit_of "k8s.io/kubernetes@$K8S_VERSION")"
staging_v="v0.${K8S_VERSION#v1.}"
grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging/' "$kgomod" | awk '{print $1}' | while read -r m; do
    go mod edit -replace "$m=$m@$staging_v"
done
go mod edit -require "k8s.io/kubernetes@$K8S_VERSION"
kcmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
kpkgs=()
for c in "${kcmds[@]}"; do kpkgs+=("k8s.io/kubernetes/cmd/$c"); done
# `@version` on every package: a bare package path would mean "latest".
go get "${kpkgs[@]/%/@$K8S_VERSION}" 2>&1 | { grep -v '^go: downloading' || true; }
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitCommit=$kcommit -X $pkg.gitTreeState=clean"
    ld+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
say "kubernetes $K8S_VERSION: compiling ${kcmds[*]}"
go build -trimpath -ldflags "$ld" -o "$out/" "${kpkgs[@]}"
# The sandbox ("pause") image's only binary, from Kubernetes' own source: no registry here.
gcc -Os -static -o "$out/pause" "$GOMODCACHE/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c"
strip "$out/pause"

# --- etcd ------------------------------------------------------------------------------------
# Its server module's root is the `etcd` main package; its own replaces are ignored in a
# wrapper, where the published api/client/pkg modules of the same version are used.
say "etcd $ETCD_VERSION"
ew="$work/etcd-$ETCD_VERSION"
rm -rf "$ew" && mkdir -p "$ew" && cd "$ew"
go mod init qwex.test/etcd-build >/dev/null 2>&1
ecommit="$(commit_of "go.etcd.io/etcd/server/v3@$ETCD_VERSION")"
go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" 2>&1 | { grep -v '^go: downloading' || true; }
go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ecommit:0:9}" \
    -o "$out/etcd" go.etcd.io/etcd/server/v3

# --- Kueue -----------------------------------------------------------------------------------
say "kueue $KUEUE_VERSION"
qw="$work/kueue-$KUEUE_VERSION"
rm -rf "$qw" && mkdir -p "$qw" && cd "$qw"
go mod init qwex.test/kueue-build >/dev/null 2>&1
qcommit="$(commit_of "sigs.k8s.io/kueue@$KUEUE_VERSION")"
go get "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION" 2>&1 | { grep -v '^go: downloading' || true; }
go build -trimpath -o "$out/kueue" -ldflags "-s -w \
    -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION \
    -X sigs.k8s.io/kueue/pkg/version.GitCommit=$qcommit" sigs.k8s.io/kueue/cmd/kueue
# Its CRDs, applied by `cluster.sh up`.
for f in "$GOMODCACHE/sigs.k8s.io/kueue@$KUEUE_VERSION"/config/components/crd/bases/*.yaml; do
    echo "---"; cat "$f"
done > "$out/kueue-crds.yaml"

for f in "${want[@]}"; do [ -s "$out/$f" ] || { echo "missing $out/$f" >&2; exit 1; }; done
touch "$out/.complete"
rm -rf "$QWEX_K8S_BIN" && mv "$out" "$QWEX_K8S_BIN"
say "done: $QWEX_K8S_BIN"
"$QWEX_K8S_BIN/kube-apiserver" --version
"$QWEX_K8S_BIN/etcd" --version | sed -n 1p  # sed reads it all: head would end the pipe early (SIGPIPE, 141)
bash "$here/build-helm.sh"
