#!/usr/bin/env bash
# A PostgreSQL server for the qwex server's tests (tests/remote), on loopback only:
#   Debian's postgresql, a cluster of its own named `qwex` on 127.0.0.1:${QWEX_PG_PORT:-54329},
#   a role and a database `qwex_test` (the role may create the per-test databases).
# The tests find it through QWEX_TEST_POSTGRES_URL, defaulting to what this script creates:
#   postgresql://qwex_test:qwex_test@127.0.0.1:54329/qwex_test
# (a throw-away password for a loopback-only test server; nothing is written into the repo).
# Idempotent; needs root (CI runs as root).
set -euo pipefail
PORT="${QWEX_PG_PORT:-54329}"
if ! command -v pg_createcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
fi
VERSION="$(ls /usr/lib/postgresql | sort -n | tail -1)"
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "qwex"' | grep -q .; then
  pg_createcluster --port "$PORT" "$VERSION" qwex -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
fi
# Our settings last (conf.d is read after postgresql.conf): loopback only; test data needs no fsync.
cat > "/etc/postgresql/$VERSION/qwex/conf.d/qwex.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "qwex" && $4 == "online"' | grep -q .; then
  pg_ctlcluster "$VERSION" qwex start
fi
psql_admin() { runuser -u postgres -- psql -X -q -p "$PORT" -v ON_ERROR_STOP=1 "$@"; }
for _ in $(seq 50); do psql_admin -c 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql_admin -tAc "select 1 from pg_roles where rolname = 'qwex_test'" | grep -q 1 ||
  psql_admin -c "create role qwex_test login createdb password 'qwex_test'"
psql_admin -tAc "select 1 from pg_database where datname = 'qwex_test'" | grep -q 1 ||
  psql_admin -c "create database qwex_test owner qwex_test"
echo "setup-postgres: PostgreSQL $VERSION cluster qwex on 127.0.0.1:$PORT, database qwex_test"
