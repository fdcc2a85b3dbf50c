#!/usr/bin/env bash
# Make a Docker daemon available for the tests, offline and without a bridge network.
# Idempotent: installs only missing packages and starts dockerd only when it is not answering.
# Uses: docker.io (daemon + CLI), busybox-static and debootstrap (offline test images),
# gcc, libc6-dev and patchelf (build the self-contained agent: an embedded CPython launcher
# that starts through its own bundled glibc loader).
set -euo pipefail

SOCKET=${QWEX_DOCKER_SOCKET:-/var/run/docker.sock}
LOG=${QWEX_DOCKERD_LOG:-/var/log/qwex-dockerd.log}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for pkg in docker.io busybox-static debootstrap patchelf gcc libc6-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-docker: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "setup-docker: daemon already running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

echo "setup-docker: starting dockerd (no bridge, no iptables), log in $LOG"
# setsid + nohup: the daemon outlives this script and the CI step that ran it.
$SUDO setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false \
  --host "unix://$SOCKET" >"$LOG" 2>&1 </dev/null &

for _ in $(seq 1 120); do
  if [ -S "$SOCKET" ] && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    echo "setup-docker: daemon up ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 0.5
done
echo "setup-docker: dockerd did not answer on $SOCKET within 60 s; last log lines:" >&2
tail -n 30 "$LOG" >&2 || true
exit 1
