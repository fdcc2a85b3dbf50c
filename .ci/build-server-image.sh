#!/usr/bin/env bash
# Build the qwex server's image offline (no registry pull), the way the test images are made:
#   .ci/build-server-image.sh WHEEL_DIR TAG [REQUIREMENT]
# - a Debian bookworm root made by debootstrap (--variant=minbase) with Debian's Python 3.11
#   (python3-minimal + its standard library), cached as a tarball in $QWEX_CI_CACHE (default .ci/cache/; .ci/run keeps it outside the checkout);
# - the project's wheels from WHEEL_DIR and their dependencies installed into
#   /usr/local/lib/python3.11/dist-packages (already on Debian's sys.path) by the pip of
#   $PYTHON (a Python 3.11 on this Debian 12 machine, so the same ABI and glibc), binary
#   wheels only; REQUIREMENT is what to install (default: qwex-remote qwex-k8s);
# - bytecode compiled once at build time (unchecked-hash: never rewritten, so the root can be
#   read-only and a start imports no source twice); docs, man pages, locales, apt lists and
#   pip's metadata caches removed;
# - a non-root user qwex (uid/gid 10001), data in /var/lib/qwex, configuration read from
#   /etc/qwex/qwex.toml (QWEX_PROJECT_DIR), entrypoint `qwex serve`, health on /api/v1/health.
# The result is imported with `docker import` as TAG.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${QWEX_CI_CACHE:-$HERE/cache}
SUITE=${QWEX_DEBIAN_SUITE:-bookworm}
PYTHON=${PYTHON:-python3}
WHEELS=${1:?usage: build-server-image.sh WHEEL_DIR TAG [REQUIREMENT...]}
TAG=${2:?usage: build-server-image.sh WHEEL_DIR TAG [REQUIREMENT...]}
shift 2
REQS=("$@")
[ "${#REQS[@]}" -gt 0 ] || REQS=(qwex-remote qwex-k8s)
UID_=10001
mkdir -p "$CACHE"

source "$HERE/apt-mirror.sh"

base="$CACHE/$SUITE-minbase-python3-stdlib.tar"
if [ ! -s "$base" ]; then
  mirror=${QWEX_DEBIAN_MIRROR:-$(apt_mirror)}
  [ -n "$mirror" ] || { echo "server image: no Debian mirror found; set QWEX_DEBIAN_MIRROR" >&2; exit 1; }
  root=$(mktemp -d)
  echo "server image: debootstrap $SUITE (minbase + python3 stdlib), once; cached in $base"
  debootstrap --variant=minbase --include=python3-minimal,libpython3.11-stdlib "$SUITE" "$root" \
    "$mirror" >"$CACHE/debootstrap-server.log" 2>&1 || {
    echo "server image: debootstrap failed; see $CACHE/debootstrap-server.log" >&2
    tail -n 20 "$CACHE/debootstrap-server.log" >&2; rm -rf "$root"; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/etc/apt/sources.list
  tar -C "$root" --numeric-owner -cf "$base.tmp" .
  mv "$base.tmp" "$base"
  rm -rf "$root"
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$base"
site="$root/usr/local/lib/python3.11/dist-packages"
mkdir -p "$site"
# --no-index for the project's own wheels would refuse their dependencies, so the wheel folder
# is offered first (--find-links) and the dependencies come through pip's configured index.
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --only-binary=:all: \
  --target "$site" --find-links "$WHEELS" "${REQS[@]}"
# What pip --target leaves that a running server never reads: its scripts (their #! names this
# machine's Python; the one script needed is written below).
rm -rf "$site/bin"
# The Kubernetes client's asyncio twin (kubernetes.aio, 68 MB) and the aiohttp stack only it
# imports (and prometheus-client's aiohttp adapter): qwex uses the synchronous client and
# serves /metrics itself. Checked: nothing left imports them.
async_only=(aiohttp aiohttp_retry multidict yarl frozenlist aiosignal propcache aiohappyeyeballs)
rm -rf "$site/kubernetes/aio" "$site/prometheus_client/aiohttp"  # the latter: its aiohttp adapter
for m in "${async_only[@]}"; do rm -rf "${site:?}/$m" "$site/$m"-*.dist-info; done
pattern="^\s*(import|from) ($(IFS='|'; echo "${async_only[*]}"))\b"
if grep -rlE "$pattern" --include='*.py' "$site" | grep -q .; then
  echo "server image: a module still imports what was removed as async-only:" >&2
  grep -rlE "$pattern" --include='*.py' "$site" >&2; exit 1
fi
cat >"$root/usr/local/bin/qwex" <<'EOF'
#!/usr/bin/python3
import sys

from qwex_core.cli import main

sys.exit(main())
EOF
chmod 755 "$root/usr/local/bin/qwex"

# Slimming: what no server process reads.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/var/lib/apt/lists/* \
  "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old "$root"/var/log/*.log \
  "$root"/usr/lib/python3.11/test "$root"/usr/lib/python3.11/idlelib \
  "$root"/usr/lib/python3.11/tkinter "$root"/usr/lib/python3.11/ensurepip \
  "$root"/usr/lib/python3.11/lib2to3 "$root"/usr/lib/python3.11/pydoc_data \
  "$root"/usr/lib/x86_64-linux-gnu/gconv  # glibc's iconv charsets: Python has its own codecs
find "$root/usr" -name __pycache__ -type d -prune -exec rm -rf {} +
# Bytecode once, for every module the server may import: checked against nothing at run time.
chroot "$root" /usr/bin/python3 -m compileall -q -j0 --invalidation-mode unchecked-hash \
  /usr/lib/python3.11 /usr/local/lib/python3.11/dist-packages >/dev/null || true

# The user the server runs as, its data and configuration folders.
echo "qwex:x:$UID_:$UID_:qwex server:/var/lib/qwex:/usr/sbin/nologin" >>"$root/etc/passwd"
echo "qwex:x:$UID_:" >>"$root/etc/group"
echo "qwex:!:19000::::::" >>"$root/etc/shadow"
mkdir -p "$root/var/lib/qwex" "$root/etc/qwex"
chown "$UID_:$UID_" "$root/var/lib/qwex"
# A configuration that parses: the chart (or `docker run -v`) mounts the real one over it.
printf '# qwex server configuration: mount yours at /etc/qwex/qwex.toml (docs/deploy.md)\n' \
  >"$root/etc/qwex/qwex.toml"

chroot "$root" /usr/local/bin/qwex serve --help >/dev/null  # it imports and runs
# What the server imports when its jobs go to Kubernetes, after the pruning above.
chroot "$root" /usr/bin/python3 -c \
  "import kubernetes.client, kubernetes.config, kubernetes.watch, qwex_k8s.plugin, qwex_k8s.runner, qwex_remote.server.app"
tar -C "$root" --numeric-owner -c . | docker import \
  -c 'ENTRYPOINT ["/usr/local/bin/qwex", "serve"]' \
  -c 'CMD ["--host", "0.0.0.0", "--port", "8765"]' \
  -c 'ENV LANG=C.UTF-8 HOME=/var/lib/qwex XDG_DATA_HOME=/var/lib QWEX_PROJECT_DIR=/etc/qwex PYTHONDONTWRITEBYTECODE=1' \
  -c "USER $UID_:$UID_" -c 'WORKDIR /var/lib/qwex' -c 'EXPOSE 8765' \
  -c 'LABEL org.opencontainers.image.title=qwex-server' \
  -m "qwex server: debian $SUITE minbase + python3.11 + ${REQS[*]}" - "$TAG" >/dev/null
echo "server image: built $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.1f MB", $1/1e6}'))"
