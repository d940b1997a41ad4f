#!/usr/bin/env bash
# The GPU check as one command on the device machine: install the wheels that travelled in .whl/
# (made here by bench/gpu_wheels.sh) ahead of the machine's own packages, then run bench/gpu_check.py.
# Figures and log go to $OUT there (bench/out/gpu-check/ elsewhere). Arguments go to gpu_check.py.
#   device tool: command "bash bench/gpu_check.sh", carry [".whl"]   (see bench/RESULTS.md, "GPU check")
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS-.whl}  # set it empty to use only what is installed
SITE=${GPU_CHECK_SITE:-/tmp/gpu-check-site}

if [ -n "$WHEELS" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  started=$SECONDS
  if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "$WHEELS"/*.whl; then
    echo "error: installing the wheels in $WHEELS failed" >&2
    exit 3
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  echo "installed $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE in $((SECONDS - started)) s"
fi
export PYTHONUNBUFFERED=1
exec "$PY" bench/gpu_check.py "$@"
