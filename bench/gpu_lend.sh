#!/usr/bin/env bash
# The whole device check on a bare lent GPU machine, in one call of the device tool (issue 31): install
# the wheels bench/gpu_wheels.py put in .whl/ (the tool's carry: [".whl"]) into /tmp/site, offline,
# then bench/gpu_check.sh, whose figures land in $OUT step by step. The line below is also the tool's
# command as it stands (it runs in the repository root); docs/GPU_CHECK.md holds the same line and a
# test keeps the two equal and under the tool's 2,000 characters.
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >"$OUT/install.txt" 2>&1 || { cat "$OUT/install.txt"; exit 3; }; export PYTHONPATH=/tmp/site DS_ACCELERATOR=cuda PYTHONUNBUFFERED=1 PYTHON=python3; bash bench/gpu_check.sh "$OUT/gpu_check.txt"
