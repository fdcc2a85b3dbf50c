#!/usr/bin/env bash
# Two unprivileged local users for the tests that prove qwex works for, and between, ordinary users:
#   qwex-user   in the `docker` group: runs local and Docker jobs, builds the agent with Debian's python3
#   qwex-other  in no special group: a second person on the same machine, who must not be able to
#               change qwex-user's run records or logs
# Idempotent; needs root (CI runs as root). The tests find them by name (tests/users.py).
set -euo pipefail
getent group docker >/dev/null || groupadd --system docker
for user in qwex-user qwex-other; do
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
done
usermod -aG docker qwex-user
# Debian's own Python with its headers and static library: what a Debian user builds the agent with.
dpkg-query -W -f='${Status}' python3-dev python3-venv 2>/dev/null | grep -c "install ok installed" | grep -q 2 || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-dev python3-venv
}
echo "setup-users: qwex-user ($(id -nG qwex-user)), qwex-other ($(id -nG qwex-other))"
