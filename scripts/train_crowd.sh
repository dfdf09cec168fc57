#!/usr/bin/env bash
# The crowd recipe: the shipped r18x025_polynl (FDDB-trained, weights/default.pth) fine-tuned on
# several real sets at once, so that it finds the small, occluded, varied faces of crowds.
#
#   scripts/train_crowd.sh [RUNS_DIR]                  (default: runs/crowd)
#   START=path/to/ckpt.pth PRESET_NAME=r18x025 scripts/train_crowd.sh runs/crowd_baseline
#                                                     (the same recipe from another starting point)
#
# Every phase resumes (--resume auto) and finished phases are skipped, so a stopped run is
# continued by starting the script again with the same RUNS_DIR.
#
# 1. labels (scripts/make_crowd_labels.py, cached and resumable): the two WIDER-trained teachers
#    (RetinaFace-MobileNet-0.25 and YuNet, fused by box voting) look at every training photo;
#    annotated faces get the MobileNet's landmarks where they have none, unannotated faces both
#    teachers agree on are added, uncertain ones become ignore regions (never taught as background);
# 2. one run draws from three sets per batch (--mix): FDDB folds 1-7 (news photos, ellipses mapped
#    to RetinaFace boxes), faces_mask train.txt (crowds: stations, classrooms; 3,253 faces, median
#    25 px; VOC boxes mapped by the measured rule) and Caltech Web Faces (2,778 web photos, many of
#    groups; boxes and landmarks from four points by the measured rule); half of the samples are
#    data-anchor sampled (--small-face-prob 0.5) so that a face drawn at random is shown at 6-40 px
#    with its neighbours scaled alike, the size of WIDER FACE's Hard faces; the scores are distilled
#    from the MobileNet teacher on every batch;
# 3. validation: faces_mask val.txt (never trained on) after every epoch; the held-out FDDB fold 8,
#    the crowd table (scripts/eval_crowd.py) and dlib's photos at the end.
#    crowds_shanghaitech/ is not trained on: it is the out-of-domain check.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
DATA="$(cd "${RETINAFACE_POLYNL_SHARED_DATA:-$HERE/../shared/data}" && pwd)"
RUNS="${1:-runs/crowd}"
PY="${PYTHON:-python}"
TEACHER="$DATA/weights_thirdparty/pytorch_retinaface/mobilenet0.25_Final.pth"
YUNET="$DATA/weights_thirdparty/yunet/face_detection_yunet_2026may.onnx"
START="${START:-$HERE/weights/default.pth}"
LABELS="${LABELS:-$RUNS/labels}"
EPOCHS="${EPOCHS:-5}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
mkdir -p "$RUNS"

"$PY" "$HERE/scripts/make_crowd_labels.py" --data "$DATA" --out "$LABELS" --sets mask,fddb,webfaces,shanghai --fit \
    2> "$RUNS/labels.log"

train() {  # output [extra flags]; a finished phase is skipped
    local out="$1"
    shift
    [ -f "$out/done" ] && return 0
    "$PY" -m retinaface_polynl train \
        --labels "$LABELS/fddb.json" --labels "$LABELS/mask.json" --labels "$LABELS/webfaces.json" \
        --mix 0.3,0.35,0.35 --val-labels "$DATA/faces_mask/val.txt" --val-every 1 \
        --output "$out" --batch-size 16 --grad-clip 10 --schedule cosine --workers 1 --resume auto \
        --no-progress --log-every 20 --distill "$TEACHER" "$@"
    touch "$out/done"
}
# phase 1: 480 px crops (the throughput a 2-core CPU allows), small-face sampling half the time
train "$RUNS/phase1" --weights "$START" --image-size 480 --epochs "$EPOCHS" --epoch-size 2000 --lr 0.002 \
    --warmup-iters 50 --seed 11 --small-face-prob 0.5 --small-face-range 6,40 --expand-prob 0.3 --expand-ratio 3 \
    --crop-scales 0.3,0.45,0.6,0.8,1.0

FINAL="$RUNS/phase1/last.pth"
# the new model at each candidate input size (the default is chosen on these validation sets:
# faces_mask val.txt, widerface_val_dev, FDDB fold 8), then the peers each at its own default
for size in original 480 640; do
    [ -f "$RUNS/crowd_$size.json" ] || "$PY" "$HERE/scripts/eval_crowd.py" --data "$DATA" --size $size \
        --model "crowd=$FINAL" --shanghai-labels "$LABELS/shanghai.json" \
        --json "$RUNS/crowd_$size.json" --markdown "$RUNS/crowd_$size.md" 2> /dev/null
    [ -f "$RUNS/fddb_$size.json" ] || "$PY" "$HERE/scripts/eval_fddb_holdout.py" --fddb "$DATA/faces_fddb" \
        --dlib "$DATA/faces_dlib" --size $size --model "crowd=$FINAL" --json "$RUNS/fddb_$size.json" 2> /dev/null
done
[ -f "$RUNS/crowd_peers.json" ] || "$PY" "$HERE/scripts/eval_crowd.py" --data "$DATA" --size default \
    --model "shipped-dec2026=$START" --mnet "$TEACHER" --yunet "$YUNET" --shanghai-labels "$LABELS/shanghai.json" \
    --json "$RUNS/crowd_peers.json" --markdown "$RUNS/crowd_peers.md" 2> /dev/null
[ -f "$RUNS/fddb_peers.json" ] || "$PY" "$HERE/scripts/eval_fddb_holdout.py" --fddb "$DATA/faces_fddb" \
    --dlib "$DATA/faces_dlib" --size default --model "shipped-dec2026=$START" --model "retinaface-mnet0.25=$TEACHER" \
    --yunet "$YUNET" --json "$RUNS/fddb_peers.json" 2> /dev/null
