#!/usr/bin/env bash
# The persistent compilation cache: the whole time of a tiny `--mode=sample` run with the
# cache off, with an empty cache (the first run, which fills it) and with the cache the
# first run left (every later run of any mode).
#
#   bash benchmarks/compilation_cache.sh          # PYTHON=/path/to/python to choose one
#
# Makes a workdir holding a fresh tiny model (checkpoint at step 3, 2 DDIM steps, 10
# images), then runs, alternating so that they share the machine's load:
#   python -m solar_jax.main --config=W/config.json --workdir=W --mode=sample
# with JAX_COMPILATION_CACHE_DIR= (off), =C on an empty C (cold), =C again (warm). The
# sample folder is removed before each run (a complete set would be reused, not drawn).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD
ROOT=$(mktemp -d)
W=$ROOT/run C=$ROOT/cache
JAX_COMPILATION_CACHE_DIR= "$PY" - "$W" <<'PY'
import sys

import jax

from solar_jax import checkpointing, parallel
from solar_jax import workdir as wd
from solar_jax.configs import tiny
from solar_jax.ddpm import train_state

config = tiny.get_config()
config.sampling.num_steps = 2
mesh = parallel.create_mesh(config.mesh)
with jax.set_mesh(mesh):
  state = train_state.init_train_state(config, mesh)
  checkpointer = checkpointing.Checkpointer(sys.argv[1], keep=1)
  checkpointer.save(3, state, {"config": config.to_json()})
  checkpointer.close()
wd.write_config(config, sys.argv[1])
PY
run() {  # run KIND CACHE_DIR: prints wall and CPU (user + system) seconds
  rm -rf "$W/samples"
  local t0 t1
  t0=$(date +%s.%N)
  JAX_COMPILATION_CACHE_DIR=$2 /usr/bin/time -o "$ROOT/time" -f "%U %S" "$PY" -m solar_jax.main \
    --config="$W/config.json" --workdir="$W" --mode=sample > /dev/null 2> "$ROOT/log" \
    || { tail -5 "$ROOT/log"; exit 1; }
  t1=$(date +%s.%N)
  printf '%-5s wall %6.1f s  cpu %6.1f s\n' "$1" "$(echo "$t1 - $t0" | bc)" \
    "$(awk '{print $1 + $2}' "$ROOT/time")"
}
run off ""
run cold "$C"
for _ in 1 2; do
  run warm "$C"
  run off ""
done
echo "cache: $(du -sh "$C" | cut -f1), $(find "$C" -type f | wc -l) files; load: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$ROOT"
