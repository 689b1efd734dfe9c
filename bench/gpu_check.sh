#!/usr/bin/env bash
# The product's own training path (training_app.ml.train.train) on a GPU, timed against the seed's
# settings as trl runs them by default: bench/gpu_product_path.py (its docstring says what it measures).
#
#   bash bench/gpu_check.sh                        # on the GPU machine: under 8 minutes
#   bash bench/gpu_check.sh --budget-seconds 300   # arguments go to bench/gpu_product_path.py
#   bash bench/gpu_check.sh --tiny                 # the same on a CPU, with a 2-layer toy model
#
# The GPU machine has torch, transformers, peft and accelerate but not trl, datasets, orjson, dill or
# multiprocess, and no network: their wheels are in bench/wheels (bench/wheels/README.md). They go into
# a temporary --target folder put first on PYTHONPATH, never into the system's site-packages. pyarrow
# (55 MB) is not carried: the image's own serves (datasets needs 24 or newer).
# JSON lines go to stdout and, when $OUT is set, to $OUT/gpu_check.jsonl. Env: PYTHON (default python3).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python3}
WHEELS="$REPO/bench/wheels"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lathe-gpu-check.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
SITE="$TMP/site"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "gpu_check: $("$PYTHON" -V 2>&1) is too old: the locked trl 1.16, pandas 3 and pyarrow 26 need 3.11+." >&2
    exit 3
fi

wanted=(trl datasets dill multiprocess orjson fsspec liger-kernel)
if ! "$PYTHON" -c 'import sys, pyarrow; sys.exit(int(pyarrow.__version__.split(".")[0]) < 24)' 2>/dev/null; then
    echo "gpu_check: datasets needs pyarrow 24 or newer on this machine (its image has it: KINDS.md)." >&2
    exit 4
fi
echo "gpu_check: installing ${wanted[*]} from bench/wheels into $SITE"
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
    --find-links "$WHEELS" --target "$SITE" "${wanted[@]}"
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# What the wheels do not bring must already be there (the machine's image has them: KINDS.md).
"$PYTHON" -c 'import torch, transformers, peft, accelerate, trl, datasets, orjson, pandas, pyarrow, xxhash, psutil, yaml, jinja2' || {
    echo "gpu_check: a package the product's training path needs is missing (above)." >&2
    exit 4
}

started=$SECONDS
set +e
timeout --kill-after=20 470 "$PYTHON" bench/gpu_product_path.py "$@"
rc=$?
set -e
case $rc in
    0) verdict="every run finished" ;;
    1) verdict="a run failed or was skipped (its JSON line says why)" ;;
    124 | 137) verdict="stopped by the 470 s timeout" ;;
    *) verdict="exit code $rc" ;;
esac
echo "gpu_check: $verdict in $((SECONDS - started)) s; JSON lines above${OUT:+ and in $OUT/gpu_check.jsonl}"
exit $rc
