#!/usr/bin/env bash
# make quickstart: demo archive -> tfds build -> train -> sample -> classify -> evaluate -> report.
set -euo pipefail
cd "$(dirname "$0")/.."
QS_DIR=${1:-runs/quickstart}
echo "quickstart: not wired up yet (needs the dataset, trainer, sampler, classifier and evaluation)." >&2
exit 1
