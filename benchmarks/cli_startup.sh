#!/usr/bin/env bash
# How long the command line takes to answer a question or refuse a typo (no run).
#
#   bash benchmarks/cli_startup.sh            # PYTHON=/path/to/python to choose one
#   bash benchmarks/cli_startup.sh "--help" "--config=tiny --print_config"   # these only
#
# Each case runs 3 times warm (the bytecode cache as it is) and 3 times cold (a fresh
# -X pycache_prefix: every module compiled from source, as the first run after an
# install); the median wall time of each is printed with the exit code of the last run.
# The OS file cache stays warm in both (dropping it would slow every other process).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD
cases=("$@")  # Each argument one command line; none: the cases below.
[ $# -gt 0 ] || cases=(
  "--help"
  "--helpfull"
  "--config=tiny --workdir=/tmp/cli_startup --config.training.num_step=5"
  "--config=tiny --workdir=/tmp/cli_startup --no_such_flag"
  "--config=tiny --workdir=/tmp/cli_startup --config.training.batch_size=abc"
  "--config=tiny --workdir=/tmp/cli_startup --config.training.batch_size=0"
  "--config=tiny --print_config --config.training.num_steps=7"
  "--config=tiny --workdir=/tmp/cli_startup --config.sampling.sampler=ddm"
)
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
for args in "${cases[@]}"; do
  for kind in warm cold; do
    times=()
    for _ in 1 2 3; do
      extra=() cache=$(mktemp -d)
      [ "$kind" = cold ] && extra=(-X "pycache_prefix=$cache")
      start=$(date +%s.%N)
      # shellcheck disable=SC2086
      "$PY" "${extra[@]}" -m solar_jax.main $args > /dev/null 2>&1
      rc=$?
      times+=("$(echo "$(date +%s.%N) - $start" | bc)")
      rm -rf "$cache"
    done
    printf '%-75s %s %5.2f s (exit %d)\n' "$args" "$kind" "$(median "${times[@]}")" "$rc"
  done
done
