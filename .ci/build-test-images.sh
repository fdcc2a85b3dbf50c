#!/usr/bin/env bash
# Build the offline test images of the Docker backend (no registry is needed or used):
#   qwex-test/busybox  a rootfs holding only a static busybox and its applet links:
#                      no Python, no libc, no /tmp (proves the agent needs nothing from the image)
#   qwex-test/noshell  a rootfs of one file, /busybox (static): no shell, no /bin at all,
#                      as an image FROM scratch with one program is
#   qwex-test/python   Debian bookworm (debootstrap --variant=minbase) plus python3-minimal,
#                      with `python` linked to python3
# Idempotent: an image that exists is kept. The debootstrap rootfs is cached as a tarball under
# .ci/cache/ so a rebuild does not download it again. The Debian mirror is the one apt already
# uses on this machine (read from the apt sources), or $QWEX_DEBIAN_MIRROR.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${QWEX_CI_CACHE:-$HERE/cache}
SUITE=${QWEX_DEBIAN_SUITE:-bookworm}
FORCE=${QWEX_REBUILD_IMAGES:-0}
mkdir -p "$CACHE"

have_image() { [ "$FORCE" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

source "$HERE/apt-mirror.sh"

build_busybox() {
  local image=qwex-test/busybox
  if have_image "$image"; then echo "images: $image exists"; return; fi
  local busybox root
  is_static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }  # ldd fails on static binaries
  busybox=$(command -v busybox || true)
  is_static "$busybox" || busybox=/bin/busybox
  is_static "$busybox" || {
    echo "images: no static busybox at $busybox; install busybox-static" >&2; exit 1; }
  root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  mkdir -p "$root/bin"
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list-full); do
    mkdir -p "$root/$(dirname "$applet")"
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
  tar -C "$root" --numeric-owner -c . | docker import -c 'CMD ["/bin/sh"]' \
    -m "static busybox only: no libc, no python, no /tmp" - "$image" >/dev/null
  echo "images: built $image"
}

build_noshell() {
  local image=qwex-test/noshell root
  if have_image "$image"; then echo "images: $image exists"; return; fi
  have_image qwex-test/busybox || QWEX_REBUILD_IMAGES=0 build_busybox
  root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  docker run --rm --network none --entrypoint /bin/cat qwex-test/busybox /bin/busybox >"$root/busybox"
  chmod 755 "$root/busybox"
  tar -C "$root" --numeric-owner -c busybox | docker import -c 'CMD ["/busybox"]' \
    -m "one static program, /busybox: no shell" - "$image" >/dev/null
  echo "images: built $image"
}

build_python() {
  local image=qwex-test/python tarball="$CACHE/$SUITE-minbase-python3.tar"
  if have_image "$image"; then echo "images: $image exists"; return; fi
  if [ ! -s "$tarball" ]; then
    local mirror root
    mirror=${QWEX_DEBIAN_MIRROR:-$(apt_mirror)}
    [ -n "$mirror" ] || { echo "images: no Debian mirror found; set QWEX_DEBIAN_MIRROR" >&2; exit 1; }
    root=$(mktemp -d)
    echo "images: debootstrap $SUITE (minbase + python3-minimal), once; cached in $tarball"
    debootstrap --variant=minbase --include=python3-minimal "$SUITE" "$root" "$mirror" \
      >"$CACHE/debootstrap.log" 2>&1 || {
      echo "images: debootstrap failed; see $CACHE/debootstrap.log" >&2; tail -n 20 "$CACHE/debootstrap.log" >&2
      rm -rf "$root"; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/etc/apt/sources.list
    ln -sf python3 "$root/usr/bin/python"  # what python-is-python3 does: `python script.py` works
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  docker import -c 'CMD ["python3"]' -c 'ENV LANG=C.UTF-8' \
    -m "debian $SUITE minbase + python3-minimal" "$tarball" "$image" >/dev/null
  echo "images: built $image"
}

build_busybox
build_noshell
build_python
