#!/usr/bin/env bash
# Debian's Slurm (slurm-wlm 22.05: slurmctld, slurmd, the client commands) and munge, for the
# Slurm backend's tests (tests/slurm). Installs only: `nox -s slurm -- up` (.ci/slurm/cluster.sh)
# writes the configuration and starts the daemons. Idempotent; needs root (CI runs as root).
set -euo pipefail
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
  || ! command -v munged >/dev/null; then
  apt-get update -qq
  # policy-rc.d keeps the packages' own services from starting: cluster.sh starts ours.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi
echo "setup-slurm: $(slurmctld -V), munge $(munged -V 2>&1 | awk '{print $1}')"
