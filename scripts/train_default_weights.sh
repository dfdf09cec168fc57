#!/usr/bin/env bash
# The recipe of the shipped weights (weights/default.pth): r18x025_polynl trained from
# scratch on FDDB folds 1-7 (fold 8 held out), on a 2-core CPU, plus the same recipe for
# the r18x025 baseline without Poly-NL (the two runs share the machine, one core each).
#
#   scripts/train_default_weights.sh [RUNS_DIR]        (default: runs/default_weights)
#
# 1. labels: FDDB ellipses -> RetinaFace-style boxes; landmarks pseudo-labelled by the
#    third-party RetinaFace-MobileNet-0.25 (scripts/make_fddb_pseudo_labels.py);
# 2. train both presets with the same flags;
# 3. evaluate them (scripts/eval_fddb_holdout.py) against the teacher and YuNet.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${RETINAFACE_POLYNL_SHARED_DATA:-$HERE/../shared/data}"
RUNS="${1:-runs/default_weights}"
PY="${PYTHON:-python}"
EPOCHS="${EPOCHS:-20}"
TEACHER="$DATA/weights_thirdparty/pytorch_retinaface/mobilenet0.25_Final.pth"

export OMP_NUM_THREADS=1  # two runs side by side on two cores: oversubscription costs ~10x
mkdir -p "$RUNS"
"$PY" "$HERE/scripts/make_fddb_pseudo_labels.py" --fddb "$DATA/faces_fddb" --teacher "$TEACHER" \
    --train-folds 1-7 --val-folds 8 --extra-min-score 0.9 --out "$RUNS/labels"

train() {  # preset
    "$PY" -m retinaface_polynl train --preset "$1" \
        --labels "$RUNS/labels/train_label.txt" --images "$DATA/faces_fddb/originalPics" \
        --val-labels "$RUNS/labels/val_label.txt" --val-images "$DATA/faces_fddb/originalPics" --val-every 3 \
        --output "$RUNS/$1" --epochs "$EPOCHS" --batch-size 16 --image-size 320 \
        --lr 0.01 --schedule cosine --warmup-epochs 1 --grad-clip 10 \
        --workers 1 --seed 0 --resume auto --no-progress --log-every 20
}
train r18x025_polynl > "$RUNS/r18x025_polynl.log" 2>&1 &
train r18x025 > "$RUNS/r18x025.log" 2>&1 &
wait
echo "trained: $RUNS/r18x025_polynl/best.pth and $RUNS/r18x025/best.pth"
