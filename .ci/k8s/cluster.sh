#!/usr/bin/env bash
# A real single-node Kubernetes cluster with Kueue, for the tests (run as root).
#
#   cluster.sh up        build the binaries if needed (build.sh), start everything, wait until
#                        the node is Ready and Kueue answers; a no-op when already up
#   cluster.sh down      stop everything; leaves no process, mount, netns, cgroup or state
#   cluster.sh status    kubeconfig path, node and Kueue readiness; non-zero when not usable
#   cluster.sh load IMG  copy an image from the local Docker daemon into the node (like kind)
#   cluster.sh kubectl … kubectl with the cluster's kubeconfig
#   cluster.sh logs      tail of every component's log
#   cluster.sh dns       start the cluster's DNS (part of `up`; on a running cluster, restarts
#                        only a kubelet started without it)
#
# Everything runs inside the network namespace $NETNS, made here: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd (Debian's), kubelet, Kueue, and the
# cluster's DNS (Debian's dnsmasq serving the pods' records that a kubectl watch writes: a
# pod's `<hostname>.<subdomain>.<namespace>.svc.cluster.local`, what an Indexed Job's workers
# find each other by). Pods get addresses on a bridge inside it. The host reaches the API server through a socat relay on
# 127.0.0.1:$PORT that enters the namespace for each connection, so no traffic touches any
# address but loopback and the namespace's own.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.sh"
BIN="$QWEX_K8S_BIN"

STATE="${QWEX_K8S_STATE:-/var/lib/qwex-k8s}"  # removed by `down`
LOGS="${QWEX_K8S_LOGS:-/var/log/qwex-k8s}"    # kept by `down`, emptied by `up`
PORT="${QWEX_K8S_PORT:-16443}"                # the host's 127.0.0.1 port of the API server
NETNS=qwex-k8s
NS_PATH="/run/netns/$NETNS"
NODE=qwex-node
NODE_IP=10.250.0.1        # on a veth inside the namespace (kubelet refuses a loopback node IP)
POD_SUBNET=10.251.0.0/24  # the CNI bridge inside the namespace
SERVICE_CIDR=10.252.0.0/24
CLUSTER_DOMAIN=cluster.local
CGROUP_ROOT=qwex-k8s      # pods' cgroups live under /sys/fs/cgroup/<controller>/qwex-k8s
PAUSE_IMAGE=qwex.local/pause:3.10
# The test namespace and Kueue objects the tests (and qwex's Kubernetes backend tests) use.
TEST_NAMESPACE=qwex-test
LOCAL_QUEUE=qwex-queue
CLUSTER_QUEUE=qwex-cluster-queue
FLAVOR=qwex-flavor
QUOTA_CPU=1
QUOTA_MEMORY=1Gi
TEST_IMAGES=(qwex-test/busybox:latest qwex-test/noshell:latest qwex-test/python:latest
    qwex-test/busybox-arm64:latest)  # linux/arm64, run under binfmt's qemu (.ci/setup-arm64.sh)
# Kueue's metrics server reads its certificate from this fixed path (no flag for it).
KUEUE_METRICS_CERTS=/etc/kueue/metrics/certs

PKI="$STATE/pki"
PIDS="$STATE/pids"
CTRD_SOCK="$STATE/run/containerd.sock"
KUBECONFIG_OUT="$STATE/kubeconfig"   # for the host: https://127.0.0.1:$PORT
ADMIN_IN="$STATE/admin-in.kubeconfig" # for components inside the namespace

log() { echo "[cluster] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
in_ns() { nsenter --net="$NS_PATH" "$@"; }
kc_ns() { in_ns "$BIN/kubectl" --kubeconfig "$ADMIN_IN" "$@"; }
ctr_() { ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"; }

# wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds, or fail naming WHAT and the log.
wait_for() {
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || die "$what: not ready after ${secs}s (logs: $LOGS)"
        sleep 1
    done
}

# ---- processes --------------------------------------------------------------------------------

# start NAME COMMAND...: run COMMAND inside the namespace, detached, logging to $LOGS/NAME.log.
start() {
    local name=$1; shift
    log "starting $name"
    # exec all the way down (subshell -> nsenter -> setsid -> component), so that $! is the
    # component's pid; setsid: it outlives this script and the caller's process group.
    # 9>&-: the component must not inherit (and so hold forever) this script's lock.
    (exec nsenter --net="$NS_PATH" setsid "$@") >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
    echo "$! $name" >"$PIDS/$name"
}

# outdated NAME FLAG: NAME runs, but without FLAG (started by an older version of this script).
outdated() {
    local pid word
    alive "$1" || return 1
    read -r pid word <"$PIDS/$1"
    ! grep -qa -- "$2" "/proc/$pid/cmdline"
}

# The APIService objects that send visibility.kueue.x-k8s.io to Kueue on the node.
visibility_api() {
    local v
    kc_ns apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: visibility-server, namespace: kueue-system}
spec:
  ports: [{name: https, port: 443, protocol: TCP, targetPort: 8082}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: visibility-server, namespace: kueue-system}
subsets:
- addresses: [{ip: "$NODE_IP"}]
  ports: [{name: https, port: 8082, protocol: TCP}]
EOF
    for v in v1beta1 v1beta2; do
        kc_ns apply -f - >/dev/null <<EOF
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: $v.visibility.kueue.x-k8s.io}
spec:
  group: visibility.kueue.x-k8s.io
  version: $v
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {name: visibility-server, namespace: kueue-system, port: 443}
EOF
    done
}

# alive NAME: its recorded pid runs and is still ours (its command line holds the recorded
# word), so a pid reused after a reboot is never taken for it.
alive() {
    local pid word
    read -r pid word 2>/dev/null <"$PIDS/$1" || return 1
    running "$pid" && grep -qa -- "$word" "/proc/$pid/cmdline"
}

running() {  # running PID: exists and is not a zombie (our parent, pid 1, reaps lazily)
    [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

stop() {  # stop NAME...: SIGTERM to all, SIGKILL to those still running after 5 s
    local n pid word pids=()
    for n in "$@"; do
        if alive "$n"; then
            read -r pid word <"$PIDS/$n"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid:$n")
        fi
        rm -f "$PIDS/$n"
    done
    local end=$((SECONDS + 5)) left
    while :; do
        left=()
        for n in "${pids[@]}"; do running "${n%%:*}" && left+=("$n"); done
        [ "${#left[@]}" -gt 0 ] || return 0
        [ "$SECONDS" -lt "$end" ] || break
        sleep 0.2
    done
    for n in "${left[@]}"; do
        log "${n#*:} ignored SIGTERM for 5s: killing it"
        kill -KILL "${n%%:*}" 2>/dev/null || true
    done
}

# ---- pieces of `up` ---------------------------------------------------------------------------

make_netns() {
    # `ip netns add` turns /run/netns into a mount point the first time: undone by `down`.
    mountpoint -q /run/netns || touch "$STATE/made-run-netns-mount"
    [ -e "$NS_PATH" ] || ip netns add "$NETNS"
    in_ns ip link set lo up
    # The node's address. This kernel has no dummy device: one end of a veth pair whose other
    # end stays in the namespace too (both up, so the link has carrier).
    in_ns ip link show qk-node >/dev/null 2>&1 || {
        in_ns ip link add qk-node type veth peer name qk-node-peer
        in_ns ip addr add "$NODE_IP/24" dev qk-node
    }
    in_ns ip link set qk-node-peer up
    in_ns ip link set qk-node up
}

# cert NAME CN [O] [SANS]: a key and a certificate signed by the cluster's CA.
cert() {
    local name=$1 cn=$2 o=${3:-} sans=${4:-} subj ext
    [ -s "$PKI/$name.crt" ] && return
    subj="/CN=$cn"; [ -z "$o" ] || subj="/O=$o$subj"
    ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
    [ -z "$sans" ] || ext+=$'\n'"subjectAltName=$sans"
    openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
    openssl req -new -key "$PKI/$name.key" -subj "$subj" 2>/dev/null |
        openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 3650 \
            -extfile <(echo "$ext") -out "$PKI/$name.crt" 2>/dev/null
}

make_pki() {
    mkdir -p "$PKI" && chmod 700 "$PKI"
    if [ ! -s "$PKI/ca.crt" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
            -days 3650 -subj "/CN=qwex-k8s-ca" 2>/dev/null
    fi
    local api_sans="IP:127.0.0.1,IP:$NODE_IP,IP:${SERVICE_CIDR%0/24}1,DNS:localhost"
    api_sans+=",DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
    api_sans+=",DNS:kubernetes.default.svc.cluster.local"
    cert apiserver kube-apiserver "" "$api_sans"
    cert admin admin system:masters
    cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
    cert controller-manager system:kube-controller-manager
    cert scheduler system:kube-scheduler
    cert kubelet "system:node:$NODE" system:nodes "IP:$NODE_IP,DNS:$NODE"
    cert kueue kueue system:masters
    cert kueue-serving kueue-webhook-service "" "IP:127.0.0.1,DNS:localhost"
    # The aggregation layer's client: the API server proxies Kueue's visibility API with it.
    cert front-proxy-client front-proxy-client
    [ -s "$PKI/sa.key" ] || {
        openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
        openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
    }
}

# kubeconfig FILE SERVER CERTNAME
kubeconfig() {
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: qwex-k8s
  cluster:
    server: $2
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$3.crt")
    client-key-data: $(base64 -w0 "$PKI/$3.key")
contexts:
- name: qwex-k8s
  context: {cluster: qwex-k8s, user: $3}
current-context: qwex-k8s
EOF
    chmod 600 "$1"
}

write_configs() {
    local inner=https://127.0.0.1:6443
    kubeconfig "$ADMIN_IN" "$inner" admin
    kubeconfig "$STATE/controller-manager.kubeconfig" "$inner" controller-manager
    kubeconfig "$STATE/scheduler.kubeconfig" "$inner" scheduler
    kubeconfig "$STATE/kubelet.kubeconfig" "$inner" kubelet
    kubeconfig "$STATE/kueue.kubeconfig" "$inner" kueue

    mkdir -p "$STATE/containerd" "$STATE/run" "$STATE/cni/net.d" "$STATE/kubelet/root"
    cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CTRD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # No registry: the sandbox image is made locally from Kubernetes' pause.c.
  sandbox_image = "$PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE: runc must not lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
    # A bridge inside the namespace; no masquerading: pods have no way out of it.
    cat >"$STATE/cni/net.d/10-qwex.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "qwex", "plugins": [
  {"type": "bridge", "bridge": "qk-br0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE/cni/ipam"}},
  {"type": "loopback"}]}
EOF
    cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
containerRuntimeEndpoint: unix://$CTRD_SOCK
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failSwapOn: false
resolvConf: ""
# Pods must not be evicted because the shared disk fills, nor images garbage-collected.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 50
EOF
    mkdir -p "$STATE/kueue/certs"
    cp "$PKI/kueue-serving.crt" "$STATE/kueue/certs/tls.crt"
    cp "$PKI/kueue-serving.key" "$STATE/kueue/certs/tls.key"
    cat >"$STATE/kueue/config.yaml" <<EOF
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health: {healthProbeBindAddress: "127.0.0.1:8081"}
metrics: {bindAddress: "127.0.0.1:8443"}
# Its webhooks are not registered with the API server (Jobs are created suspended with the
# queue label by their owner), but the webhook server still starts and needs a certificate.
webhook: {port: 9443, host: 127.0.0.1, certDir: $STATE/kueue/certs}
leaderElection: {leaderElect: false}
internalCertManagement: {enable: false}
integrations: {frameworks: ["batch/job"]}
EOF
}

# The sandbox image: one static binary, as a docker-archive tarball that ctr imports.
pause_tar() {
    local d="$STATE/pause-image" diff cfg
    rm -rf "$d" && mkdir -p "$d/rootfs"
    cp "$BIN/pause" "$d/rootfs/pause"
    tar -C "$d/rootfs" --numeric-owner --owner=0 --group=0 --mtime=@0 -cf "$d/layer.tar" pause
    diff="sha256:$(sha256sum "$d/layer.tar" | cut -d' ' -f1)"
    cat >"$d/config.json" <<EOF
{"architecture": "amd64", "os": "linux",
 "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
 "rootfs": {"type": "layers", "diff_ids": ["$diff"]}}
EOF
    cfg="$(sha256sum "$d/config.json" | cut -d' ' -f1).json"
    mv "$d/config.json" "$d/$cfg"
    echo "[{\"Config\": \"$cfg\", \"RepoTags\": [\"$PAUSE_IMAGE\"], \"Layers\": [\"layer.tar\"]}]" \
        >"$d/manifest.json"
    tar -C "$d" -cf "$d.tar" manifest.json "$cfg" layer.tar
    rm -rf "$d"
    echo "$d.tar"
}

# load IMAGE: copy IMAGE from the local Docker daemon into containerd (skipped when the same
# image id was loaded before). Pods then use it with imagePullPolicy IfNotPresent or Never.
# IMAGE may also be an OCI layout archive (a file: `qwex agent image --oci-archive`), imported
# under the name it carries. Every platform's content is imported, not only the node's: an
# index keeps all its platforms, and a linux/arm64 image runs under qemu.
load_image() {
    local image=$1 id stamp
    stamp="$STATE/images/$(echo "$image" | tr '/:' '__')"
    if [ -f "$image" ]; then
        id="$(sha256sum "$image" | cut -d' ' -f1)"
        stamp="$STATE/images/archive_$(basename "$image")"
    else
        id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)" ||
            die "load: no image $image in the local Docker daemon"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" = "$id" ]; then
        log "image $image already loaded"; return
    fi
    log "loading $image"
    mkdir -p "$STATE/images"
    if [ -f "$image" ]; then
        ctr_ images import --all-platforms "$image" >/dev/null
    else
        docker save "$image" | ctr_ images import --all-platforms - >/dev/null
    fi
    echo "$id" >"$stamp"
}

start_components() {
    local pki=$PKI
    alive etcd || start etcd "$BIN/etcd" --name qwex --data-dir "$STATE/etcd" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster qwex=http://127.0.0.1:2380 \
        --unsafe-no-fsync  # a throwaway test cluster: speed over durability
    wait_for 60 etcd in_ns curl -fsS http://127.0.0.1:2379/health

    alive kube-apiserver || start kube-apiserver "$BIN/kube-apiserver" \
        --etcd-servers=http://127.0.0.1:2379 \
        --bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$NODE_IP" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --client-ca-file="$pki/ca.crt" \
        --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority="$pki/ca.crt" \
        --kubelet-preferred-address-types=InternalIP \
        --service-account-issuer=https://kubernetes.default.svc \
        --service-account-key-file="$pki/sa.pub" \
        --service-account-signing-key-file="$pki/sa.key" \
        --authorization-mode=Node,RBAC --allow-privileged=true \
        --enable-admission-plugins=NodeRestriction \
        --requestheader-client-ca-file="$pki/ca.crt" \
        --requestheader-allowed-names=front-proxy-client \
        --requestheader-username-headers=X-Remote-User \
        --requestheader-group-headers=X-Remote-Group \
        --requestheader-extra-headers-prefix=X-Remote-Extra- \
        --proxy-client-cert-file="$pki/front-proxy-client.crt" \
        --proxy-client-key-file="$pki/front-proxy-client.key" \
        --enable-aggregator-routing=true
    wait_for 120 kube-apiserver kc_ns get --raw /readyz

    alive kube-controller-manager || start kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig="$STATE/controller-manager.kubeconfig" \
        --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
        --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
        --bind-address=127.0.0.1 --leader-elect=false \
        --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
        --use-service-account-credentials=true \
        --controllers='*'  # all default ones: job, ttl-after-finished, garbagecollector, namespace, …
    alive kube-scheduler || start kube-scheduler "$BIN/kube-scheduler" \
        --kubeconfig="$STATE/scheduler.kubeconfig" \
        --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
        --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --leader-elect=false

    alive containerd || start containerd containerd --config "$STATE/containerd/config.toml"
    wait_for 60 containerd ctr_ version
    local pause
    if ! ctr_ images ls -q | grep -qx "$PAUSE_IMAGE"; then
        pause="$(pause_tar)"
        ctr_ images import "$pause" >/dev/null
        rm -f "$pause"
    fi

    # kubelet wants its cgroup root to exist in every hierarchy; a new v1 cpuset starts with
    # no CPUs and no memory nodes, so it gets its parent's.
    local c
    for c in /sys/fs/cgroup/*/; do mkdir -p "$c$CGROUP_ROOT"; done
    cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.mems"
    start_kubelet

    # Kueue's CRDs (server-side: some are too large for the last-applied annotation).
    kc_ns create namespace kueue-system --dry-run=client -o yaml | kc_ns apply -f - >/dev/null
    kc_ns apply --server-side --force-conflicts -f "$BIN/kueue-crds.yaml" >/dev/null
    wait_for 60 "Kueue's CRDs" kc_ns wait --for=condition=Established --timeout=5s \
        crd/workloads.kueue.x-k8s.io crd/clusterqueues.kueue.x-k8s.io
    mkdir -p "$KUEUE_METRICS_CERTS"
    cp "$PKI/kueue-serving.crt" "$KUEUE_METRICS_CERTS/tls.crt"
    cp "$PKI/kueue-serving.key" "$KUEUE_METRICS_CERTS/tls.key"
    # Kueue's visibility API (pending workloads and their positions, `qwex status`): Kueue
    # serves it on :8082 with the certificate it reads from /visibility (a fixed path), and
    # the API server proxies it (the APIService below, routed to the node's address).
    mkdir -p /visibility
    cp "$PKI/kueue-serving.crt" /visibility/tls.crt
    cp "$PKI/kueue-serving.key" /visibility/tls.key
    alive kueue || start kueue env KUBECONFIG="$STATE/kueue.kubeconfig" "$BIN/kueue" \
        --config="$STATE/kueue/config.yaml" --visibility-server-port=8082 \
        --kubeconfig="$STATE/kueue.kubeconfig"  # the visibility server reads the flag
    visibility_api

    start_relay
    kubeconfig "$KUBECONFIG_OUT" "https://127.0.0.1:$PORT" admin
    # Started with sudo: the user who asked may read the kubeconfig (tests, kubectl, qwex).
    if [ -n "${SUDO_USER:-}" ]; then chown "$SUDO_USER" "$KUBECONFIG_OUT"; fi
}

node_ready() {
    [ "$(kc_ns get node "$NODE" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
kueue_ready() { in_ns curl -fsS http://127.0.0.1:8081/readyz; }

queues() {
    kc_ns apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $TEST_NAMESPACE}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: $FLAVOR}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: $CLUSTER_QUEUE}
spec:
  namespaceSelector: {}
  resourceGroups:
  - coveredResources: [cpu, memory]
    flavors:
    - name: $FLAVOR
      resources:
      - {name: cpu, nominalQuota: "$QUOTA_CPU"}
      - {name: memory, nominalQuota: $QUOTA_MEMORY}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {name: $LOCAL_QUEUE, namespace: $TEST_NAMESPACE}
spec: {clusterQueue: $CLUSTER_QUEUE}
EOF
}

# The host-side relay: 127.0.0.1:$PORT -> the namespace's 127.0.0.1:6443, per connection.
# Both of its TCP ends set TCP_NODELAY, as the API server and its clients do: without it a
# response written in two pieces waited for the peer's delayed ACK (40 ms), in about half
# of all requests, which no client of a real API server sees.
start_relay() {
    alive relay && return 0
    log "starting relay on 127.0.0.1:$PORT"
    setsid socat "TCP-LISTEN:$PORT,bind=127.0.0.1,reuseaddr,fork,backlog=128,nodelay" \
        "EXEC:nsenter --net=$NS_PATH socat STDIO TCP\:127.0.0.1\:6443\,nodelay" \
        >>"$LOGS/relay.log" 2>&1 </dev/null 9>&- &
    echo "$! TCP-LISTEN:$PORT" >"$PIDS/relay"
}

all_alive() {
    local n
    for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kueue \
        relay; do
        alive "$n" || return 1
    done
}

start_kubelet() {
    alive kubelet || start kubelet "$BIN/kubelet" \
        --config="$STATE/kubelet/config.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
        --root-dir="$STATE/kubelet/root" --hostname-override="$NODE" --node-ip="$NODE_IP" \
        --cluster-dns="$NODE_IP" --cluster-domain="$CLUSTER_DOMAIN"
}

# The cluster's DNS: dnsmasq on the node's address answers for $CLUSTER_DOMAIN from one
# hosts file per pod (its folder is watched: a change is served at once), which the
# dns-watch below writes from a watch of every pod. No upstream: pods have no way out.
# A kubelet started by an older cluster.sh (no --cluster-dns) is restarted alone: its
# pods run on, the next ones get the DNS in their resolv.conf.
cmd_dns() {
    mkdir -p "$STATE/dns"
    alive dnsmasq || start dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --no-resolv --no-hosts --user=root --pid-file= --log-facility=- \
        --listen-address="$NODE_IP" --bind-interfaces --port=53 \
        --local="/$CLUSTER_DOMAIN/" --local-ttl=0 --hostsdir="$STATE/dns"
    alive dns-watch || start dns-watch bash "$here/cluster.sh" dns-watch
    if outdated kubelet --cluster-dns; then
        log "restarting kubelet with the cluster's DNS"
        stop kubelet
        start_kubelet
        wait_for 120 "node $NODE Ready" node_ready
    fi
    wait_for 30 "the cluster's DNS" in_ns bash -c "exec 3<>/dev/tcp/$NODE_IP/53"
}

# dns-watch: one hosts file per pod that has an address and a subdomain (a headless
# Service's pods): `IP HOSTNAME.SUBDOMAIN.NAMESPACE.svc.DOMAIN SUBDOMAIN.NAMESPACE.svc.DOMAIN`,
# removed when the pod goes. The watch is made again whenever it ends.
dns_watch() {
    local dir="$STATE/dns" kind ns name ip host sub tmp
    local path='{.type} {.object.metadata.namespace} {.object.metadata.name} '
    path+='{.object.status.podIP} {.object.spec.hostname} {.object.spec.subdomain}{"\n"}'
    while :; do
        rm -f "$dir"/*
        "$BIN/kubectl" --kubeconfig "$ADMIN_IN" get pods -A --watch --output-watch-events \
            -o jsonpath="$path" | while read -r kind ns name ip host sub; do
            if [ "$kind" = DELETED ] || [ -z "$ip" ] || [ -z "$sub" ]; then
                rm -f "$dir/$ns.$name"
                continue
            fi
            tmp="$dir/.$ns.$name"
            echo "$ip ${host:-$name}.$sub.$ns.svc.$CLUSTER_DOMAIN $sub.$ns.svc.$CLUSTER_DOMAIN" >"$tmp"
            mv -f "$tmp" "$dir/$ns.$name"
        done
        sleep 1
    done
}

# ---- commands ---------------------------------------------------------------------------------

cmd_up() {
    [ "$(id -u)" = 0 ] || die "run as root (network namespace, containerd, kubelet)"
    local t0=$SECONDS n
    bash "$here/build.sh"
    # Left over from a run that was killed (or a reboot): clean it all away first.
    if { [ -e "$NS_PATH" ] || [ -d "$STATE" ]; } && ! all_alive; then
        log "cleaning away what is left of an earlier cluster"
        cmd_down
    elif outdated kube-apiserver --proxy-client-cert-file || outdated kueue --visibility-server-port
    then  # started by an older version of this script, without a flag it needs now
        log "restarting a cluster started by an older cluster.sh"
        cmd_down
    elif outdated relay nodelay; then  # started without TCP_NODELAY (see start_relay)
        log "restarting the host relay with TCP_NODELAY"
        stop relay
        start_relay
    fi
    mkdir -p "$STATE" "$PIDS" "$LOGS"
    if ! all_alive; then
        for n in "$LOGS"/*.log; do [ -e "$n" ] && : >"$n"; done
        make_netns
        make_pki
        write_configs
        start_components
    fi
    wait_for 120 "node $NODE Ready" node_ready
    wait_for 120 "Kueue" kueue_ready
    cmd_dns
    wait_for 60 "Kueue's visibility API" kc_ns get --raw /apis/visibility.kueue.x-k8s.io/v1beta2
    wait_for 60 "the test namespace and queues" queues
    wait_for 60 "the default service account of $TEST_NAMESPACE" \
        kc_ns -n "$TEST_NAMESPACE" get serviceaccount default
    local image
    for image in "${TEST_IMAGES[@]}"; do
        if docker image inspect "$image" >/dev/null 2>&1; then
            load_image "$image"
        else
            log "note: $image is not in the local Docker daemon (nox -s images); not loaded"
        fi
    done
    wait_for 30 "host relay" "$BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" get --raw /readyz
    log "up in $((SECONDS - t0))s; KUBECONFIG=$KUBECONFIG_OUT"
}

cmd_down() {
    [ "$(id -u)" = 0 ] || die "run as root"
    local t0=$SECONDS n pid me podnets=()
    stop relay dns-watch dnsmasq kueue kubelet kube-scheduler kube-controller-manager kube-apiserver etcd
    # containerd makes each pod's network namespace under /run/netns (cni-…): note ours, by
    # asking it, so that they can be removed once it is gone.
    if alive containerd; then
        for n in $(ctr_ containers ls -q 2>/dev/null); do
            podnets+=($(ctr_ containers info "$n" 2>/dev/null | jq -r \
                '.Spec.linux.namespaces[]? | select(.type == "network") | .path // empty'))
        done
    fi
    # The relay's per-connection children, and every process left in the namespace (container
    # processes, shims' children): found by their network namespace, killed by pid.
    if [ -e "$NS_PATH" ]; then
        me="$(stat -L -c %i "$NS_PATH")"
        for pid in $(ls /proc | grep -E '^[0-9]+$'); do
            [ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" = "$me" ] &&
                kill -KILL "$pid" 2>/dev/null || true
        done
    fi
    # Pods' processes, by their cgroups.
    local c
    for c in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
        [ -d "$c" ] || continue
        find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    # containerd's shims name our socket in their command line; the relay's forked children
    # (one per open connection) its listening address.
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        grep -qaE -- "$CTRD_SOCK|TCP-LISTEN:$PORT,bind=127.0.0.1" "/proc/$pid/cmdline" 2>/dev/null &&
            kill -KILL "$pid" 2>/dev/null || true
    done
    stop containerd
    # Mounts under the state folder (pod volumes, container root filesystems), deepest first.
    local m
    for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^$STATE(/|$)" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    # Empty cgroups, deepest first (a cgroup is removed with rmdir).
    for c in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
        [ -d "$c" ] || continue
        find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    for n in $(printf '%s\n' "${podnets[@]}" | sort -u); do
        case "$n" in /run/netns/cni-* | /var/run/netns/cni-*) ;; *) continue ;; esac
        umount "$n" 2>/dev/null || true
        rm -f "$n"
    done
    if [ -e "$NS_PATH" ]; then ip netns delete "$NETNS" 2>/dev/null || rm -f "$NS_PATH"; fi
    if [ -e "$STATE/made-run-netns-mount" ] && [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
        umount /run/netns 2>/dev/null || true
    fi
    rm -rf "$STATE" "$KUEUE_METRICS_CERTS"
    rmdir /etc/kueue/metrics /etc/kueue 2>/dev/null || true
    log "down in $((SECONDS - t0))s"
}

cmd_status() {
    local ok=0 node=NotReady kueue=NotReady
    echo "kubeconfig: $KUBECONFIG_OUT"
    echo "logs: $LOGS"
    if [ -e "$NS_PATH" ] && [ -s "$ADMIN_IN" ]; then
        node_ready && node=Ready
        kueue_ready >/dev/null 2>&1 && kueue=Ready
        "$BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" get --raw /readyz >/dev/null 2>&1 || ok=1
    else
        ok=1
    fi
    echo "node $NODE: $node"
    echo "kueue: $kueue"
    echo "namespace: $TEST_NAMESPACE, local queue: $LOCAL_QUEUE (cluster queue $CLUSTER_QUEUE:" \
        "cpu $QUOTA_CPU, memory $QUOTA_MEMORY)"
    [ "$node" = Ready ] && [ "$kueue" = Ready ] && [ $ok = 0 ] ||
        { echo "cluster: not usable (start it: nox -s cluster -- up)"; return 1; }
    echo "cluster: usable"
}

cmd_logs() {
    local f
    for f in "$LOGS"/*.log; do
        [ -e "$f" ] || continue
        echo "===== $f (last ${1:-40} lines)"
        tail -n "${1:-40}" "$f"
    done
}

# One changing command at a time: two `up`s racing would start everything twice.
lock() {
    [ "$(id -u)" = 0 ] || die "run as root"
    exec 9>/run/qwex-k8s.lock
    flock -w 600 9 || die "another cluster.sh has held /run/qwex-k8s.lock for 10 minutes"
}

case "${1:-}" in
    up) lock; cmd_up ;;
    down) lock; cmd_down ;;
    status) cmd_status ;;
    build) bash "$here/build.sh" ;;
    load) [ $# -ge 2 ] || die "usage: cluster.sh load IMAGE..."; shift; lock
        alive containerd || die "the cluster is not up (nox -s cluster -- up)"
        for i in "$@"; do load_image "$i"; done ;;
    kubectl) shift; exec "$BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" "$@" ;;
    logs) cmd_logs "${2:-40}" ;;
    dns) lock; cmd_dns ;;
    dns-watch) dns_watch ;;  # started by `dns`, in the cluster's namespace
    *) echo "usage: cluster.sh up|down|status|build|load IMAGE...|kubectl ARGS...|logs [N]|dns" >&2
        exit 2 ;;
esac
