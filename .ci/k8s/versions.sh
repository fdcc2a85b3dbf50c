# Pinned versions of the test cluster, sourced by build.sh and cluster.sh.
#
# Why these:
# - Kubernetes v1.34.x: the last minor whose kubelet runs on a cgroup v1 host without
#   `failCgroupV1: false` (1.35 refuses v1 by default), and it still talks to Debian 12's
#   containerd 1.6 (CRI v1; the missing RuntimeConfig call falls back to cgroupDriver).
# - etcd v3.6.x: the series Kubernetes 1.34 is tested with (Debian's etcd 3.4 is too old).
# - Kueue v0.17.0: the newest release the Go module proxy serves; it supports Kubernetes
#   1.34 (its CRDs and controllers need nothing newer).
# - Helm v4.3.x: the current major, for the server's chart (deploy/helm); built on its own
#   (its own folder and key), so bumping it does not rebuild the cluster.
# Changing one of them changes the cache key, so the next run builds again.
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
KUEUE_VERSION=v0.17.0
HELM_VERSION=v4.3.2

QWEX_K8S_CACHE="${QWEX_K8S_CACHE:-$([ "$(id -u)" = 0 ] && echo /var/cache/qwex-k8s || echo "${XDG_CACHE_HOME:-$HOME/.cache}/qwex-k8s")}"
QWEX_K8S_BIN="$QWEX_K8S_CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kueue-$KUEUE_VERSION"
QWEX_HELM_BIN="$QWEX_K8S_CACHE/helm-$HELM_VERSION"
