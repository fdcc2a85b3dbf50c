#!/usr/bin/env bash
# linux/arm64 on this amd64 machine: Debian's cross compiler (the arm64 agent is cross-built,
# `qwex agent build --platform linux/arm64`) and qemu-user-static registered with binfmt_misc,
# so the kernel hands arm64 executables to qemu: the agent's smoke test, and Docker running
# linux/arm64 images (tests/docker/test_arm64.py). The registration has the fix-binary flag
# 'F': the kernel opens qemu when registering, so it works inside containers and chroots
# that have no qemu of their own. Idempotent; needs root (CI runs as root). Nothing of arm64
# is installed system-wide: the agent's arm64 files are fetched into the user cache.
set -euo pipefail
packages=(qemu-user-static binfmt-support gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/status" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  # binfmt-support's entry (imported by qemu-user-static's install); Debian's own file
  # for systemd-binfmt when binfmt-support cannot enable it.
  update-binfmts --enable qemu-aarch64 2>/dev/null ||
    grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register"
fi
grep -q '^flags: .*F' "$binfmt/qemu-aarch64" || {
  echo "setup-arm64: qemu-aarch64 is registered without the fix-binary flag F:" >&2
  cat "$binfmt/qemu-aarch64" >&2
  exit 1
}
echo "setup-arm64: $(aarch64-linux-gnu-gcc -dumpfullversion) cross gcc; binfmt qemu-aarch64 $(head -n1 "$binfmt/qemu-aarch64") ($(grep '^flags' "$binfmt/qemu-aarch64"))"
