#!/usr/bin/env bash
# Prove the CUDA paths on a GPU in a few minutes, then (optionally) train for the time that is left.
#
#   scripts/gpu_check.sh OUT                       # the checks; results and logs in OUT
#   TRAIN_SECONDS=420 TRAIN_ARGS="..." scripts/gpu_check.sh OUT   # the checks, then training
#
# 1. scripts/gpu_check.py: float16 detection against float32 on the 13 check photos, AMP training
#    steps whose loss must fall, an NCCL all-reduce, timings at VGA (OUT/checks.md, OUT/checks.json);
# 2. real training under torchrun over every GPU (NPROC, default: all of them), 20 steps on FDDB
#    fold 1 with --sync-bn: several GPUs exchange gradients through NCCL (one GPU is a world of one:
#    the NCCL all-reduce of step 1 is then the collective's proof); OUT/ddp/log.jsonl must hold the
#    steps with a finite loss and OUT/ddp/last.pth must load;
# 3. with TRAIN_SECONDS > 0: `train TRAIN_ARGS --output OUT/train --resume auto` under torchrun,
#    stopped after TRAIN_SECONDS (checkpoints every SAVE_EVERY steps, so a later call resumes it).
#    A lent machine has no network and takes 64 MiB with a call: pack the photos first with
#    scripts/pack_training_set.py into an ignored folder (runs/pack) and carry it, e.g.
#      TRAIN_ARGS="--labels runs/pack/shanghaitech.json --labels runs/pack/webfaces.json --mix 0.6,0.4
#                  --weights weights/default.pth --epochs 6 --epoch-size 2000 --batch-size 32"
#
# DEVICE=cpu runs all of it on the CPU (gloo instead of NCCL, float32 training): how the test suite
# proves this script on machines without a GPU. Exit status non-zero when a check fails.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:?give the folder for the results: scripts/gpu_check.sh OUT}"
PY="${PYTHON:-python}"
DATA="${RETINAFACE_POLYNL_SHARED_DATA:-$HERE/../shared/data}"
DEVICE="${DEVICE:-cuda}"
if [ "$DEVICE" = cpu ]; then GPUS=1; else GPUS="$("$PY" -c 'import torch; print(torch.cuda.device_count())')"; fi
NPROC="${NPROC:-$GPUS}"
STEPS="${STEPS:-40}"
mkdir -p "$OUT"

# 1. the checks
"$PY" "$HERE/scripts/gpu_check.py" --device "$DEVICE" --steps "$STEPS" --json "$OUT/checks.json" \
    ${CHECK_ARGS:-} 2> "$OUT/checks.log" | tee "$OUT/checks.md"

# 2. training under torchrun over every GPU
rm -rf "$OUT/ddp"
DDP_ITERS="${DDP_ITERS:-20}"
SYNC_BN=()
[ "$DEVICE" != cpu ] && SYNC_BN=(--sync-bn)
"$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m retinaface_polynl train \
    --labels "$DATA/faces_fddb" --folds 1 --preset r18x025_polynl --device "$DEVICE" --output "$OUT/ddp" \
    --max-iters "$DDP_ITERS" --batch-size "${DDP_BATCH:-8}" --image-size 320 --workers 1 --log-every 5 \
    --no-progress "${SYNC_BN[@]}" 2> "$OUT/ddp.log"
"$PY" - "$OUT/ddp" "$NPROC" "$DDP_ITERS" <<'EOF' | tee -a "$OUT/checks.md"
import json, math, sys
from pathlib import Path

from retinaface_polynl.checkpoints import load_model

out, nproc, iters = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
steps = [json.loads(line) for line in open(out / "log.jsonl") if '"train"' in line]
config = json.loads((out / "config.json").read_text())
assert config["world_size"] == nproc, f"world size {config['world_size']}, expected {nproc}"
assert steps and steps[-1]["iter"] == iters, f"the run stopped at {steps[-1]['iter'] if steps else 0} of {iters}"
assert all(math.isfinite(s["loss"]) for s in steps), [s["loss"] for s in steps]
load_model(out / "last.pth")
rate = steps[-1]["images_per_s"]
print(f"| torchrun, {nproc} process(es) | ok | {iters} steps, loss {steps[0]['loss']:.2f} at step "
      f"{steps[0]['iter']}, {steps[-1]['loss']:.2f} at {iters}; {rate:.1f} images/s at 320 px; last.pth loads |")
EOF

# 3. training for the time that is left
if [ "${TRAIN_SECONDS:-0}" -gt 0 ]; then
    : "${TRAIN_ARGS:?TRAIN_SECONDS needs TRAIN_ARGS, the train options (--labels ... and the recipe)}"
    # shellcheck disable=SC2086  # TRAIN_ARGS is a list of options
    timeout --signal=TERM "$TRAIN_SECONDS" "$PY" -m torch.distributed.run --standalone \
        --nproc_per_node="$NPROC" -m retinaface_polynl train $TRAIN_ARGS --device "$DEVICE" \
        --output "$OUT/train" --resume auto --save-every "${SAVE_EVERY:-100}" --no-progress \
        2> "$OUT/train.log" || [ $? -eq 124 ]
    echo "training: $(grep -c '"train"' "$OUT/train/log.jsonl" 2>/dev/null || echo 0) log lines in $OUT/train/log.jsonl"
fi
