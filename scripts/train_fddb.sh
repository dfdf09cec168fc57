#!/usr/bin/env bash
# Training recipes.
#
# 1) Fine-tune on FDDB (runs on these machines): the paper's route, starting from a
#    RetinaFace trained on WIDER FACE (Pytorch_Retinaface MobileNet-0.25), inserting a
#    zero-initialised Poly-NL block after res4, training only the block and the heads for
#    the first epoch, then everything.  FDDB folds 1-7 train, fold 8 validates (AP@0.5,
#    best.pth); folds 9-10 are kept out for independent evaluation.  FDDB ellipses become
#    RetinaFace-style boxes (retinaface_polynl.data.fddb.ellipse_to_face_box).
#
#      scripts/train_fddb.sh [OUTPUT_DIR] [extra train flags...]
#
#    Add "--device cuda" on a GPU; under torchrun for several:
#      torchrun --nproc_per_node=4 -m retinaface_polynl train ...same flags...
#
# 2) The paper's detectors from scratch on WIDER FACE (needs WIDER_train and GPUs), e.g.
#      torchrun --nproc_per_node=8 -m retinaface_polynl train --preset r18x025_polynl \
#          --labels WIDER_train/label.txt --images WIDER_train/images --device cuda \
#          --output runs/r18x025_polynl --batch-size 32 --image-size 640 --sync-bn
#      torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
#          -m retinaface_polynl train --preset r50_polynl --labels WIDER_train/label.txt \
#          --images WIDER_train/images --device cuda --output runs/r50_polynl --sync-bn
#    (per-preset defaults: retinaface_polynl.train.config.default_train_config; a killed run
#    continues with --resume auto).
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${RETINAFACE_POLYNL_SHARED_DATA:-$HERE/../shared/data}"
OUT="${1:-runs/fddb_mnet025_polynl}"
shift || true
PY="${PYTHON:-python}"

exec "$PY" -m retinaface_polynl train \
    --preset mnet025_polynl \
    --weights "$DATA/weights_thirdparty/pytorch_retinaface/mobilenet0.25_Final.pth" \
    --freeze-epochs 1 \
    --labels "$DATA/faces_fddb" --folds 1-7 \
    --val-labels "$DATA/faces_fddb" --val-folds 8 --val-size 480 \
    --output "$OUT" \
    --epochs 12 --batch-size 16 --image-size 640 \
    --lr 0.001 --schedule cosine --warmup-epochs 0.5 \
    --workers 4 --resume auto \
    "$@"
