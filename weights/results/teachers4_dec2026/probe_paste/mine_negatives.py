"""Mine confirmed non-faces the shipped student scores >= 0.4 on TRAINING photos (WIDER train 1,000 with
complete labels; FDDB folds 1-7; faces_mask train): IoU < 0.2 with every annotated face, no SCRFD/CenterFace
face (>= 0.1) at IoU >= 0.2, 20 px or wider. Saves each with a 25 % margin as PNG + index.json."""
import sys, json, glob, os, cv2, numpy as np, warnings
from pathlib import Path
warnings.simplefilter("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "scripts"))
from retinaface_polynl import Detector
from retinaface_polynl.train.teachers import ScrfdTeacher, CenterFaceTeacher
from widerface_eval import box_iou, load_fddb_annotations
from eval_fddb_holdout import fddb_face_boxes
from measure_anonymize_defaults import voc_boxes
D = Path(__file__).resolve().parents[5] / "shared" / "data"; OUT = Path(sys.argv[1]); OUT.mkdir(parents=True, exist_ok=True)
part, parts = int(sys.argv[2]), int(sys.argv[3])
jobs = []  # (image path, gt boxes xyxy)
for lab in sorted(glob.glob("/tmp/wider_train/labels/train/*.txt")):
    jobs.append(("yolo", lab.replace("labels", "images").replace(".txt", ".jpg"), lab))
ann = load_fddb_annotations(D / "faces_fddb", folds="1-7")
for n, b in fddb_face_boxes(ann).items():
    jobs.append(("box", str(D / "faces_fddb/originalPics" / f"{n}.jpg"), b.tolist()))
for n in (D / "faces_mask/train.txt").read_text().split():
    jobs.append(("box", str(D / "faces_mask/images" / f"{n}.jpg"), voc_boxes(D / "faces_mask/annotations" / f"{n}.xml").tolist()))
jobs = jobs[part::parts]
det = Detector(threshold=0.4)
scrfd = ScrfdTeacher(D / "weights_thirdparty/scrfd/scrfd_2.5g_kps-opt2.param", threshold=0.1)
cf = CenterFaceTeacher(D / "weights_thirdparty/centerface/centerface.onnx", threshold=0.1)
index = []
for k, (kind, path, lab) in enumerate(jobs):
    img = cv2.imread(path)
    if img is None: continue
    H, W = img.shape[:2]
    if kind == "yolo":
        g = np.loadtxt(lab, ndmin=2) if os.path.getsize(lab) else np.zeros((0, 5))
        gt = np.c_[(g[:, 1] - g[:, 3] / 2) * W, (g[:, 2] - g[:, 4] / 2) * H, (g[:, 1] + g[:, 3] / 2) * W, (g[:, 2] + g[:, 4] / 2) * H]
    else:
        gt = np.asarray(lab, np.float32).reshape(-1, 4)
    d = det.detect(img)
    if not len(d): continue
    w = d.boxes[:, 2] - d.boxes[:, 0]
    off = (box_iou(gt, d.boxes).max(0) < 0.2) if len(gt) else np.ones(len(d), bool)
    cand = np.where(off & (w >= 20))[0]
    if not len(cand): continue
    t = np.concatenate([scrfd(img).boxes.reshape(-1, 4), cf(img).boxes.reshape(-1, 4)])
    for c in cand:
        b = d.boxes[c]
        if len(t) and box_iou(t, b[None])[:, 0].max() >= 0.2: continue
        m = 0.25 * max(b[2] - b[0], b[3] - b[1])
        x1, y1, x2, y2 = int(max(0, b[0] - m)), int(max(0, b[1] - m)), int(min(W, b[2] + m)), int(min(H, b[3] + m))
        name = f"p{part}_{k}_{c}.png"
        cv2.imwrite(str(OUT / name), img[y1:y2, x1:x2])
        index.append({"file": name, "source": path, "score": round(float(d.scores[c]), 3), "box": [round(float(v), 1) for v in b]})
    if k % 200 == 0: print(k, len(jobs), len(index), flush=True)
json.dump(index, open(OUT / f"index_{part}.json", "w"), indent=0)
print("done", len(index))
