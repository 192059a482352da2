#!/usr/bin/env bash
# One prepared GPU sitting (a device machine with CUDA PyTorch; no internet there).
#
#   examples/gpu_session.sh prepare            # here: copy the training data into .gpu/ (ignored, ~25 MB)
#   examples/gpu_session.sh device [SECONDS]   # there, in one call: CUDA tests, benchmarks, training
#
# The device step runs in under 10 minutes with the default 300 s of training:
#  1. the CUDA tests (tests/core: fp32 paths within 1/255 of the plain network, fp16
#     within its stated tolerance, tiled and untiled);
#  2. benchmarks/inference.py on the GPU in fp16 at 512, 1080p and 4K, light and full;
#  3. the default model's run resumed on the GPU for SECONDS, then interrupted with
#     SIGINT so it checkpoints (settings, not device, must match to resume).
# Everything it measures lands in $OUT (the device tool copies it back); the updated
# checkpoint and log are copied there too, to be put back into examples/default_model/.
set -uo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    src="${ASSETS:-../shared/assets}"
    mkdir -p .gpu/assets/train-ready .gpu/assets/vgg
    cp -r "$src/train-ready/content" "$src/train-ready/styles" .gpu/assets/train-ready/
    # Only the layers the losses use (up to relu4_1, features.0-19): 8 MB instead of 39, so the
    # working tree and the data stay under the device call's 64 MiB.
    "${PYTHON:-.venv/bin/python}" - "$src/vgg/vgg19-imagenet-caffe.safetensors" \
        .gpu/assets/vgg/vgg19-imagenet-caffe.safetensors <<'PY'
import sys
from safetensors import safe_open
from safetensors.numpy import save_file
with safe_open(sys.argv[1], "np") as f:
    keep = {k: f.get_tensor(k) for k in f.keys() if int(k.split(".")[1]) <= 19}
    save_file(keep, sys.argv[2], metadata={**f.metadata(), "trimmed": "features.0-19 (up to relu4_1)"})
PY
    du -sh .gpu
    echo "now: run (device tool) 'examples/gpu_session.sh device' with carry [\".gpu\"]"
    ;;
device)
    seconds="${2:-300}"
    out="${OUT:-.gpu/out}"
    mkdir -p "$out" /tmp/pp
    ln -sfn "$PWD/core" /tmp/pp/pastiche_core
    export PYTHONPATH="/tmp/pp:$PWD" PYTHONUNBUFFERED=1
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
      python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } \
        2>&1 | tee "$out/device.txt"
    timeout 180 python3 -m pytest -q -p no:cacheprovider tests/core/test_exact_paths.py \
        tests/core/test_precision.py tests/core/test_stylizer.py -k "cuda or gpu or exact" 2>&1 \
        | tee "$out/cuda_tests.txt" | tail -5
    for arch in light full; do
        timeout 150 python3 benchmarks/inference.py --device cuda --sizes 512,1080p,4k --arch "$arch" \
            --json > "$out/bench_$arch.json" 2> "$out/bench_$arch.err"; tail -3 "$out/bench_$arch.err"
    done
    python3 examples/default_model/train.py --assets .gpu/assets --resume --device cuda --workers 8 \
        > "$out/train.txt" 2>&1 &
    sleep "$seconds"
    pkill -INT -f "pastiche_core train"  # the training process itself checkpoints on SIGINT
    wait
    cp examples/default_model/checkpoint.safetensors examples/default_model/train.log.jsonl "$out/"
    tail -c 400 "$out/train.txt"
    ;;
*)
    sed -n 2,16p "$0"; exit 2
    ;;
esac
