"""Drop bank patches in which SCRFD-2.5G or CenterFace sees a face (>= 0.2) anywhere."""
import glob, os, sys, cv2, numpy as np, warnings
warnings.simplefilter("ignore")
from pathlib import Path
from retinaface_polynl.train.teachers import ScrfdTeacher, CenterFaceTeacher
D = Path(__file__).resolve().parents[5] / "shared" / "data"
scrfd = ScrfdTeacher(D / "weights_thirdparty/scrfd/scrfd_2.5g_kps-opt2.param", threshold=0.2)
cf = CenterFaceTeacher(D / "weights_thirdparty/centerface/centerface.onnx", threshold=0.2)
out = Path(sys.argv[2]); out.mkdir(exist_ok=True)
kept = dropped = 0
for f in sorted(glob.glob(f"{sys.argv[1]}/*.png")):
    p = cv2.imread(f)
    if p is None or min(p.shape[:2]) < 12: continue
    big = cv2.resize(p, None, fx=2, fy=2) if max(p.shape[:2]) < 200 else p
    pad = cv2.copyMakeBorder(big, 32, 32, 32, 32, cv2.BORDER_CONSTANT, value=(104, 117, 123))
    if len(scrfd(pad)) or len(cf(pad)):
        dropped += 1; continue
    os.link(f, out / os.path.basename(f)); kept += 1
print("kept", kept, "dropped", dropped)
