#!/bin/bash
# The GPU checks, as one run on a machine with a CUDA GPU and CuPy (PyTorch too for float8):
# the gpu-marked backend tests, then benchmarks/bench_gpu.py, their output in $OUT (default
# ./gpu-check). Wheels in .whl/ (packages that machine's Python lacks: here cryptography, cffi,
# pycparser, recordlinkage, jellyfish) are installed to /tmp/site first. TOTAL_S bounds the
# whole run: the big (10M x 10M) run stops at its deadline and is projected. Measured with it
# on an H200: tests 30 s, the benchmark 5 min (BENCHMARKS.md, "GPU backend").
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-./gpu-check}
mkdir -p "$OUT"
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/env.txt" 2>&1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
        >> "$OUT/env.txt" 2>&1 && export PYTHONPATH=/tmp/site
fi
python3 -c "import sys, numpy, numba, cupy; print(sys.version, numpy.__version__, numba.__version__, cupy.__version__)" >> "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
echo "[$(elapsed) s] tests"
timeout "${TESTS_S:-170}" python3 -m pytest -p no:cacheprovider --noconftest -o addopts="" -q -rA \
    -m gpu tests/test_backends.py > "$OUT/tests.txt" 2>&1
echo "tests rc=$?"; tail -5 "$OUT/tests.txt"
echo "[$(elapsed) s] benchmark"
total=${TOTAL_S:-540}
timeout $(( total - $(elapsed) )) python3 -m benchmarks.bench_gpu --records 1000000 \
    --check-records 200000 --dedup-records 2000000 --cli-records 1000000 \
    --big "${BIG:-10000000}" --deadline $(( total - $(elapsed) - 110 )) \
    --json "$OUT/gpu.json" > "$OUT/bench.txt" 2>&1
echo "benchmark rc=$?"; tail -40 "$OUT/bench.txt"
echo "[$(elapsed) s] done"
