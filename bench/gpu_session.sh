#!/usr/bin/env bash
# Every GPU check of the project in one command, for a session that is lent a GPU machine (device time
# is scarce: about 15 minutes per session, one to two of them spent starting the machine). Run from the
# repository root on the GPU machine; its python3 must hold torch, numpy, pyyaml and pytest (Ray, Optuna
# and MLflow are not needed: the parser, the trainer and these benchmarks import none of them).
#
#   bash bench/gpu_session.sh            # ~6-8 min on one H100 (estimated; not yet run: no GPU lent so far)
#
# Writes each step's output to $OUT (the device tool's folder) or /tmp/uwav-gpu, and goes on past a
# failing step so one run gives every number it can.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MLFLOW_DISABLE_TELEMETRY=true
out="${OUT:-/tmp/uwav-gpu}"
mkdir -p "$out"
py="${PYTHON:-python3}"

step() {  # step NAME TIMEOUT_S COMMAND...: run, keep its output, note its exit status
    local name=$1 limit=$2
    shift 2
    echo "=== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    echo "=== $name exit ${PIPESTATUS[0]}"
}

step gpu 30 bash -c "nvidia-smi; $py -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'"
step test_cuda 120 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py
# Paper-size parser: uwav vs the plain baseline, fp32 and bf16, extrapolated LLP epoch, GFLOP/s and MFU.
step bench_train 200 "$py" bench/bench_train.py --device cuda --train-videos 640 --batches 9 --rounds 3
# Trials packed per GPU (what `resources: {gpu: 1/k}` does in a sweep): aggregate throughput and memory.
step packing_fp32 200 "$py" bench/bench_gpu_packing.py --trials 1 2 4 8 --steps 40
