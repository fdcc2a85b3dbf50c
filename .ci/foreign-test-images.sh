#!/usr/bin/env bash
# The offline test images of another platform than this machine's (no registry is needed or used):
#   qwex-test/busybox-arm64  linux/arm64: Debian's arm64 static busybox and its applet links
#   qwex-test/noshell-arm64  linux/arm64: one file, /busybox, as an arm64 image FROM scratch is
#   qwex-test/s390x          linux/s390x metadata on one text file: a platform qwex has no
#                            agent for (never run)
# The arm64 ones run under qemu (.ci/setup-arm64.sh registers it with binfmt_misc). Idempotent:
# an image that exists is kept. Apart from .ci/build-test-images.sh (whose content keys the
# cache of debootstrapped root filesystems): it needs qwex-test/busybox, which that one builds.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${QWEX_CI_CACHE:-$HERE/cache}
FORCE=${QWEX_REBUILD_IMAGES:-0}
mkdir -p "$CACHE"

have_image() { [ "$FORCE" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

# Debian .debs of another architecture, downloaded (not installed) with apt's own state in
# $CACHE/apt-ARCH: this machine's sources with the architecture overridden.
fetch_debs() {
  local arch=$1 dir="$CACHE/apt-$1"; shift
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs"
  local apt=(apt-get -q -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
    -o Dir::State::status=/dev/null -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  [ -n "$(ls "$dir/lists" 2>/dev/null | grep Packages)" ] || "${apt[@]}" update >/dev/null
  # Lists kept from an earlier run may name a version the archive has replaced since: update.
  (cd "$dir/debs" && "${apt[@]}" download "$@" >/dev/null 2>&1) ||
    { "${apt[@]}" update >/dev/null && (cd "$dir/debs" && "${apt[@]}" download "$@" >/dev/null); }
}

# import_as PLATFORM IMAGE CMD-JSON ROOT: an image of ROOT's files for PLATFORM. Not `docker
# import --platform`, which this daemon ignores (it records its own architecture): the
# classic builder, FROM scratch, with the root as a tar it unpacks (links kept).
import_as() {
  local platform=$1 image=$2 cmd=$3 root=$4 ctx
  ctx=$(mktemp -d)
  tar -C "$root" --numeric-owner -cf "$ctx/root.tar" .
  printf 'FROM scratch\nADD root.tar /\nCMD %s\n' "$cmd" >"$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q --platform "$platform" -t "$image" "$ctx" >/dev/null 2>&1 || {
    DOCKER_BUILDKIT=0 docker build --platform "$platform" -t "$image" "$ctx" >&2; rm -rf "$ctx"; exit 1; }
  rm -rf "$ctx"
}

build_arm64() {
  local busybox=qwex-test/busybox-arm64 noshell=qwex-test/noshell-arm64 root deb
  if have_image "$busybox" && have_image "$noshell"; then
    echo "images: $busybox and $noshell exist"; return; fi
  deb=$(ls "$CACHE"/apt-arm64/debs/busybox-static_*_arm64.deb 2>/dev/null | tail -n1 || true)
  if [ -z "$deb" ]; then
    fetch_debs arm64 busybox-static
    deb=$(ls "$CACHE"/apt-arm64/debs/busybox-static_*_arm64.deb | tail -n1)
  fi
  root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  dpkg-deb -x "$deb" "$root/deb"
  mkdir -p "$root/busybox/bin" "$root/noshell"
  cp "$root/deb/bin/busybox" "$root/busybox/bin/busybox"
  cp "$root/deb/bin/busybox" "$root/noshell/busybox"
  # The applet list of the x86 busybox (the arm64 one would need qemu to list its own): the
  # same Debian version and configuration, so the same applets.
  for applet in $(docker run --rm --network none --entrypoint /bin/busybox qwex-test/busybox --list-full); do
    mkdir -p "$root/busybox/$(dirname "$applet")"
    [ -e "$root/busybox/$applet" ] || ln -s /bin/busybox "$root/busybox/$applet"
  done
  import_as linux/arm64 "$busybox" '["/bin/sh"]' "$root/busybox"
  import_as linux/arm64 "$noshell" '["/busybox"]' "$root/noshell"
  echo "images: built $busybox and $noshell"
}

build_s390x() {
  local image=qwex-test/s390x root
  if have_image "$image"; then echo "images: $image exists"; return; fi
  root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  echo "an image of a platform qwex has no agent for" >"$root/README"
  import_as linux/s390x "$image" '["/bin/sh"]' "$root"
  echo "images: built $image"
}

build_arm64
build_s390x
