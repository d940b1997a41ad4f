#!/usr/bin/env bash
# Download the wheels the GPU check needs on the device machine into .whl/ (ignored by git), where
# the device tool carries them (carry [".whl"]); bench/gpu_check.sh installs them there.
#
# The device image has torch 2.11 + CUDA 13, transformers 5.17, peft, accelerate, sentence-transformers,
# pyarrow, pandas, click, pluggy, tabulate, python-dateutil, but no trl, datasets, sqlite-utils or
# bitsandbytes. What travels, at the versions this project's .venv runs (so the GPU runs what CI tests):
#   transformers (5.24: the engine's cache and template code is tested against it, not 5.17), peft,
#   trl + datasets + dill + multiprocess + fsspec (the fine-tune; fsspec at the version datasets pins),
#   sqlite-utils + click + click-default-group + sqlite-fts4 (the sweep writes its rows to SQLite),
#   bitsandbytes (QLoRA, and paged_adamw_32bit, the engine's CUDA optimiser). bitsandbytes' wheel
#   (43 MB) holds a library per CUDA version; only CUDA 13's and the CPU one are kept (about 7 MB).
# pyarrow (datasets wants >= 24) is the image's own: its 42 MB wheel would not fit beside the rest.
# The whole working tree plus these wheels must stay under the tool's 64 MiB a call; checked below.
# No network is needed on the device: the wheels are pure Python (bitsandbytes: manylinux x86-64).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=${1:-.whl}
LIMIT=$((64 * 1024 * 1024))

version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
PACKAGES=(transformers peft trl datasets dill multiprocess fsspec
  sqlite-utils click click-default-group sqlite-fts4 bitsandbytes)
SPECS=()
for name in "${PACKAGES[@]}"; do SPECS+=("$name==$(version "$name")"); done

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
# The device's python3 is CPython 3.12 on x86-64 (see the device README's KINDS.md).
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$DEST" "${SPECS[@]}"

# Keep bitsandbytes' CPU and CUDA 13.x libraries only; RECORD is rewritten to match.
"$PY" - "$DEST" <<'PYEOF'
import re
import sys
import zipfile
from pathlib import Path

keep = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")
for wheel in Path(sys.argv[1]).glob("bitsandbytes-*.whl"):
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
        dropped = {
            info.filename
            for info in source.infolist()
            if info.filename.endswith(".so") and not keep.search(info.filename)
        }
        for info in source.infolist():
            if info.filename in dropped:
                continue
            data = source.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = ("\n".join(l for l in lines if l.split(",")[0] not in dropped) + "\n").encode()
            target.writestr(info, data)
    slim.replace(wheel)
    print(f"{wheel.name}: dropped {len(dropped)} libraries for other CUDA/ROCm/XPU versions")
PYEOF

tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
wheels=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
ls -l "$DEST"
echo "working tree $((tree / 1024)) KiB + wheels $((wheels / 1024)) KiB = $(((tree + wheels) / 1024)) KiB of $((LIMIT / 1024)) KiB"
if [ $((tree + wheels)) -ge $LIMIT ]; then
  echo "error: over the 64 MiB one device call carries" >&2
  exit 1
fi
