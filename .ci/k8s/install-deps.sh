#!/usr/bin/env bash
# Debian packages the test cluster needs (run as root; idempotent, quick when all are present):
# containerd 1.6 + runc as the node's runtime, the CNI plugins (bridge, host-local, loopback),
# socat for the host-side relay into the cluster's network namespace, openssl for its
# certificates, gcc + libc6-dev for the static pause binary, jq/curl for the scripts, dnsmasq
# (dnsmasq-base: the program alone, no service) as the cluster's DNS.
set -euo pipefail
pkgs=(containerd runc containernetworking-plugins socat iproute2 util-linux openssl curl jq
      gcc libc6-dev binutils ca-certificates dnsmasq-base)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "k8s deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "k8s deps: Go (>= 1.24) is needed to build the cluster" >&2; exit 1; }
