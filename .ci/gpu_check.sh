#!/usr/bin/env bash
# Every GPU check of the project in one call (issue 23): run on a lent GPU from the repository root,
#   OUT=<folder for the results> bash .ci/gpu_check.sh
# 1. speed: measured peaks, training images/s and MFU of the default and the official 256-px configs,
#    the 256-px forward and the editing latency (python -m evaluation.speed --device cuda --all);
# 2. the default training on CUDA (bf16 autocast chosen from the device) for at most TRAIN_S seconds;
# 3. the SynthFaces benchmark and the three editing scripts on CUDA with the checkpoint it wrote.
# Knobs (environment): DEVICE (cuda), TRAIN_S (240), ITERS (750: one epoch, validation and best.pth), SPEED_ARGS (extra speed flags),
# BENCH_NUM (200). The CPU dry run: DEVICE=cpu TRAIN_S=60 ITERS=4 SPEED_ARGS=--quick BENCH_NUM=8.
# On the lent GPU: OUT=$OUT bash .ci/gpu_check.sh 2>&1 | tee $OUT/log.txt (at most ~10 minutes).
set -uo pipefail
export PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda} TRAIN_S=${TRAIN_S:-200} ITERS=${ITERS:-750} BENCH_NUM=${BENCH_NUM:-200}
OUT=${OUT:-/tmp/gpu_check} WORK=${WORK:-/tmp/gpu_work}
PY=$(command -v python3 || command -v python)
mkdir -p "$OUT" "$WORK"
step() { echo; echo "=== $* ($(date +%T))"; }
step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
step speed
timeout 200 $PY -m evaluation.speed --device "$DEVICE" --all ${SPEED_ARGS:-} --json "$OUT/speed.json"
echo "speed rc=$?"
step "training (default config, at most ${TRAIN_S}s)"
rm -rf "$WORK/saved"
start=$(date +%s)
timeout --signal=INT "$TRAIN_S" $PY train.py -c configs/synthfaces.json --device "$DEVICE" --iters "$ITERS" \
  --save_dir "$WORK/saved" --run_id gpu
echo "train rc=$? after $(( $(date +%s) - start ))s"
ckpt=$(ls -t "$WORK"/saved/models/*/gpu/best.pth "$WORK"/saved/models/*/gpu/latest.pth 2>/dev/null | head -1)
if [ -z "$ckpt" ]; then  # stopped before its first epoch ended: a short run that saves at its end
  echo "no checkpoint within ${TRAIN_S}s; a 20-iteration run for the checks below"
  $PY train.py -c configs/synthfaces.json --device "$DEVICE" --iters 20 --save_dir "$WORK/saved" --run_id gpu --overwrite
  ckpt=$(ls -t "$WORK"/saved/models/*/gpu/latest.pth 2>/dev/null | head -1)
fi
if [ -z "$ckpt" ]; then echo "no checkpoint written"; exit 1; fi
echo "checkpoint: $ckpt ($(du -h "$ckpt" | cut -f1))"
$PY - "$ckpt" <<'PY'
import sys, torch
p = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
print("iteration", p.get("iteration"), "epoch", p.get("epoch"), "monitor", p.get("monitor_best"))
PY
step "SynthFaces benchmark on $DEVICE"
timeout 150 $PY -m evaluation.synth_benchmark --resume "$ckpt" --device "$DEVICE" --num "$BENCH_NUM" --out "$WORK/bench"
echo "benchmark rc=$?"
cp "$WORK"/bench/*.md "$OUT/" 2>/dev/null
step "editing scripts on $DEVICE (precision auto)"
$PY -m data_loader.synthfaces --out "$WORK/faces" --num 4 --size 64 >/dev/null
timeout 120 $PY reconstruction.py --resume "$ckpt" --data_path "$WORK/faces/images" --device "$DEVICE" --out "$WORK/rec" --grid \
  && timeout 120 $PY component_transfer.py --resume "$ckpt" --data_path "$WORK/faces/images" --reference "$WORK/faces/images/$(ls "$WORK/faces/images" | head -1)" --component eyes mouth --device "$DEVICE" --out "$WORK/tr" --grid \
  && timeout 120 $PY attr_manipulation.py --resume "$ckpt" --data_path "$WORK/faces/images" --attr mouth_open --device "$DEVICE" --out "$WORK/attr" --grid
echo "editing rc=$?"
cp "$WORK"/rec/grid_*.png "$OUT/" 2>/dev/null
# The checkpoint comes back in parts of 15 MB (the transfer takes files up to 16 MB): cat ckpt.part.* > best.pth
split -b 15000000 "$ckpt" "$OUT/ckpt.part."
ls -la "$OUT"
