#!/usr/bin/env bash
# The checks that need a GPU, in one run: the CUDA tests, then `bench optim` and `bench bn-fold`
# on the device. Uses the machine's own python3 with PyTorch (dlopt from src/, not installed).
# Results go to $OUT (default /tmp/dlopt-gpu-check); each step has its own time limit, so a
# slow one leaves the others' results. Not part of CI: CI has no GPU.
set -u
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/dlopt-gpu-check}
REPEATS=${REPEATS:-3}
mkdir -p "$OUT"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" |
    tee "$OUT/device.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 |
    tee "$OUT/cuda-tests.txt"
for bench in optim bn-fold; do
    timeout "$([ $bench = optim ] && echo 240 || echo 90)" python3 -c "from dlopt.benchmarks import run_benchmark
run_benchmark('$bench', repeats=$REPEATS, device='cuda')" 2>&1 |
        grep -v -E 'USDT|profiler_st' | tee "$OUT/bench-$bench-cuda.txt"
done
