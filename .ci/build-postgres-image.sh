#!/usr/bin/env bash
# The PostgreSQL image of the Helm chart's tests (tests/helm: two server replicas sharing one
# database), built offline like the server image: Debian's postgresql on a debootstrapped
# minbase, imported into Docker (no registry pull). Cached rootfs in $QWEX_CI_CACHE.
#
#   build-postgres-image.sh TAG
#
# The container runs as Debian's `postgres` user: on first start it makes a cluster in
# $PGDATA (default /var/lib/postgresql/data/pgdata, under a volume) whose superuser is
# $POSTGRES_USER (default qwex) with the password $POSTGRES_PASSWORD (scram-sha-256 from any
# address: for a test cluster's pod network), then runs postgres listening on every address.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${QWEX_CI_CACHE:-$HERE/cache}
SUITE=${QWEX_DEBIAN_SUITE:-bookworm}
TAG=${1:?usage: build-postgres-image.sh TAG}
mkdir -p "$CACHE"
source "$HERE/apt-mirror.sh"

base="$CACHE/$SUITE-minbase-postgresql.tar"
if [ ! -s "$base" ]; then
  mirror=${QWEX_DEBIAN_MIRROR:-$(apt_mirror)}
  [ -n "$mirror" ] || { echo "postgres image: no Debian mirror found; set QWEX_DEBIAN_MIRROR" >&2; exit 1; }
  root=$(mktemp -d)
  echo "postgres image: debootstrap $SUITE (minbase + postgresql), once; cached in $base"
  debootstrap --variant=minbase --include=postgresql "$SUITE" "$root" "$mirror" \
    >"$CACHE/debootstrap-postgres.log" 2>&1 || {
    echo "postgres image: debootstrap failed; see $CACHE/debootstrap-postgres.log" >&2
    tail -n 20 "$CACHE/debootstrap-postgres.log" >&2; rm -rf "$root"; exit 1; }
  # What this server never uses: docs, locales, apt's caches, the packaged cluster (the
  # entrypoint makes its own) and LLVM with the JIT it serves (jit=off; over 100 MB).
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/etc/apt/sources.list \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/lib/postgresql/*/main "$root"/etc/postgresql/*/main \
    "$root"/usr/lib/x86_64-linux-gnu/libLLVM* "$root"/usr/lib/postgresql/*/lib/llvmjit* \
    "$root"/usr/lib/postgresql/*/lib/bitcode
  tar -C "$root" --numeric-owner -cf "$base.tmp" .
  mv "$base.tmp" "$base"
  rm -rf "$root"
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$base"
bin=$(ls -d "$root"/usr/lib/postgresql/*/bin | sort -V | tail -1)
bin=${bin#"$root"}
uid=$(chroot "$root" id -u postgres)
gid=$(chroot "$root" id -g postgres)
cat >"$root/usr/local/bin/qwex-postgres" <<EOF
#!/bin/sh
# First start: a cluster in \$PGDATA; then postgres on every address (the pod's).
set -eu
: "\${PGDATA:=/var/lib/postgresql/data/pgdata}"
: "\${POSTGRES_USER:=qwex}"
: "\${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
export PGDATA
if [ ! -s "\$PGDATA/PG_VERSION" ]; then
  pw=\$(mktemp)
  printf '%s\n' "\$POSTGRES_PASSWORD" >"\$pw"
  $bin/initdb --username="\$POSTGRES_USER" --pwfile="\$pw" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "\$pw"
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"\$PGDATA/pg_hba.conf"
fi
exec $bin/postgres -c listen_addresses='*' -c unix_socket_directories=/tmp -c jit=off "\$@"
EOF
chmod 755 "$root/usr/local/bin/qwex-postgres"
mkdir -p "$root/var/lib/postgresql/data"
chown "$uid:$gid" "$root/var/lib/postgresql/data"
tar -C "$root" --numeric-owner -c . | docker import \
  -c 'ENTRYPOINT ["/usr/local/bin/qwex-postgres"]' \
  -c "ENV LANG=C.UTF-8 PATH=$bin:/usr/local/bin:/usr/bin:/bin" \
  -c "USER $uid:$gid" -c 'EXPOSE 5432' \
  -c 'LABEL org.opencontainers.image.title=qwex-test-postgres' \
  -m "PostgreSQL for qwex's Helm tests: debian $SUITE minbase + postgresql" - "$TAG" >/dev/null
echo "postgres image: built $TAG (uid $uid; $(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.1f MB", $1/1e6}'))"
