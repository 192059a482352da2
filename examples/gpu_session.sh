#!/usr/bin/env bash
# One prepared GPU sitting (a device machine with CUDA PyTorch; no internet there).
#
#   examples/gpu_session.sh prepare            # here: copy the training data into .gpu/ (ignored, ~25 MB)
#   examples/gpu_session.sh device [SECONDS]   # there, in one call: CUDA tests, benchmarks, training
#   examples/gpu_session.sh quality [SECONDS]  # there, a second call: is width the limit? (below)
#
# The device step runs in under 10 minutes with the default 300 s of training:
#  1. the CUDA tests (tests/core: fp32 paths within 1/255 of the plain network, fp16
#     within its stated tolerance, tiled and untiled);
#  2. benchmarks/inference.py on the GPU in fp16 at 512, 1080p and 4K, light and full;
#  3. the default model's run resumed on the GPU for SECONDS, then interrupted with
#     SIGINT so it checkpoints (settings, not device, must match to resume).
# Everything it measures lands in $OUT (the device tool copies it back); the updated
# checkpoint and log are copied there too, to be put back into examples/default_model/.
#
# The quality step asks what the CPU sittings could not (docs/training.md, section 9,
# "Fifth" and "Seventh sitting"): the light default stays three to seven times Gatys'
# style loss, for lack of capacity to serve many photos at once. It trains the full
# network (32/64/128 channels, 1.7M parameters) on the 20 styles from scratch with
# stage B's loss settings for SECONDS (default 360), then scores it on the held-out
# photos exactly as the default model is scored, and prints its ratios to
# examples/default_model/gatys_reference.json. DEVICE=cpu runs it here (a check of
# the script, not a result).
set -uo pipefail
cd "$(dirname "$0")/.."
# A script's background jobs ignore SIGINT, and Python then never raises KeyboardInterrupt:
# this prefix restores it (exec, same PID), so `kill -INT` makes a run checkpoint.
restore_sigint=(python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])')
# There, the checkout's core is imported as pastiche_core without installing it.
use_checkout() {
    mkdir -p /tmp/pp
    ln -sfn "$PWD/core" /tmp/pp/pastiche_core
    export PYTHONPATH="/tmp/pp:$PWD" PYTHONUNBUFFERED=1
}
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
    mkdir -p "$out"
    use_checkout
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
quality)
    seconds="${2:-360}"
    out="${OUT:-.gpu/out}"
    device="${DEVICE:-cuda}"
    mkdir -p "$out"
    use_checkout
    a=.gpu/assets
    python3 -c "import sys; sys.path.insert(0, 'examples/default_model'); import train; from pathlib import Path; train.split_photos(Path('$a/train-ready/content'))"
    data=(--styles "$a/train-ready/styles" --styles-manifest examples/default_model/styles.json
          --vgg "$a/vgg/vgg19-imagenet-caffe.safetensors")
    loss=(--content-layer relu3_1 --style-loss-weight 5 --tv-weight 10)
    # The checkpoint (weights plus Adam state, about 20 MB) stays there: only the model comes back.
    "${restore_sigint[@]}" python3 -m pastiche_core train "${data[@]}" "${loss[@]}" --content .train/content \
        --out "$out/quality.safetensors" --checkpoint /tmp/quality.ckpt.safetensors \
        --arch full --crop-size 128 --style-size 256 --batch-size 16 --lr 1e-3 --seed 11 \
        --steps 1000000 --device "$device" --checkpoint-minutes 2 --quiet > "$out/quality_train.txt" 2>&1 &
    trainer=$!
    sleep "$seconds"
    kill -INT "$trainer"  # it checkpoints and writes the model on SIGINT
    wait "$trainer"
    tail -c 300 "$out/quality_train.txt"
    python3 -m pastiche_core evaluate "$out/quality.safetensors" "${data[@]}" "${loss[@]}" \
        --content .train/holdout --size 256 --limit 4 --gatys-iterations 0 \
        --json "$out/quality_eval.json" --device "$device" --quiet > "$out/quality_eval.txt" 2>&1
    python3 examples/default_model/style_ratios.py "$out/quality_eval.json" \
        examples/default_model/gatys_reference.json | tee "$out/quality_ratios.txt" | tail -3
    ;;
*)
    sed -n 2,26p "$0"; exit 2
    ;;
esac
