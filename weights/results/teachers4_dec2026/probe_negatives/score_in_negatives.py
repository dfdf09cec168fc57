"""How each model scores the mined negatives of the photos it trained on: 150 FDDB folds 1-7 photos
holding a negative (runs/negatives_t03/fddb.json, seeded sample), each negative's best detection at
IoU >= 0.5 (0 when none), detections from 0.02 at each model's recorded input rule.
    OMP_NUM_THREADS=2 python score_in_negatives.py runs/negatives_t03/fddb.json NAME=CKPT ..."""
import json, sys, warnings
import cv2, numpy as np
from retinaface_polynl import Detector
from retinaface_polynl.boxes import box_iou
warnings.simplefilter("ignore")
entries = [x for x in json.load(open(sys.argv[1]))["images"] if x["negatives"]]
entries = [entries[i] for i in np.random.default_rng(0).permutation(len(entries))[:150]]
for spec in sys.argv[2:]:
    name, ckpt = spec.split("=", 1)
    det, best = Detector(ckpt, threshold=0.02), []
    for x in entries:
        found, neg = det.detect(cv2.imread(x["image"])), np.asarray(x["negatives"], np.float32)
        best += list(np.where(box_iou(neg, found.boxes) >= 0.5, found.scores[None], 0).max(1) if len(found) else np.zeros(len(neg)))
    b = np.asarray(best)
    print(f"{name}: {len(b)} negatives, mean best score {b.mean():.3f}, >= 0.12 {(b >= 0.12).mean():.3f}, >= 0.3 {(b >= 0.3).mean():.3f}")
