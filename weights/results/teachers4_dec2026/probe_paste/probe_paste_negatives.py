"""Probe (issue 40, 7 Dec 2026): paste mined non-faces (hands, fists, held objects the shipped student scores
>= 0.4 on its training photos, no teacher's face) into training crops as background, then train as r3.

    python probe_paste_negatives.py BANK_DIR -- <train command line>   (--occlude-prob P: the paste probability)

The crops' step that would occlude faces (augment.occlude, after the final resize) is replaced by: with
probability P, paste 1-3 bank patches (mirrored at random, long side 16-160 px at the training size,
edges feathered) where they touch no face box and no ignore region. Faces and labels are left as they are."""
import glob, sys
import cv2, numpy as np
from retinaface_polynl.data import augment as A

bank_dir, argv = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
BANK = [cv2.imread(f) for f in sorted(glob.glob(f"{bank_dir}/*.png"))]
BANK = [b for b in BANK if b is not None and min(b.shape[:2]) >= 12]
print(f"probe: {len(BANK)} negative patches from {bank_dir}", flush=True)


def paste(sample, rng, prob, min_face_size=16.0):
    if rng.random() >= prob:
        return sample
    image = sample.image.copy()
    h, w = image.shape[:2]
    taken = np.concatenate([sample.boxes.reshape(-1, 4), sample.ignore.reshape(-1, 4)])
    for _ in range(int(rng.integers(1, 4))):
        patch = BANK[int(rng.integers(len(BANK)))]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        side = rng.uniform(16, 160)
        s = side / max(patch.shape[:2])
        ph, pw = max(4, round(patch.shape[0] * s)), max(4, round(patch.shape[1] * s))
        if ph >= h or pw >= w:
            continue
        for _try in range(10):
            x, y = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
            box = np.array([x, y, x + pw, y + ph], np.float32)
            if not len(taken) or not ((np.minimum(taken[:, 2], box[2]) > np.maximum(taken[:, 0], box[0]))
                                      & (np.minimum(taken[:, 3], box[3]) > np.maximum(taken[:, 1], box[1]))).any():
                break
        else:
            continue
        p = cv2.resize(np.ascontiguousarray(patch), (pw, ph), interpolation=cv2.INTER_AREA)
        alpha = np.zeros((ph, pw), np.float32)
        b = max(1, min(ph, pw) // 8)
        alpha[b:-b, b:-b] = 1.0
        alpha = cv2.GaussianBlur(alpha, (0, 0), b / 2 + 0.5)[..., None]
        roi = image[y:y + ph, x:x + pw].astype(np.float32)
        image[y:y + ph, x:x + pw] = (alpha * p + (1 - alpha) * roi).round().clip(0, 255).astype(np.uint8)
        taken = np.concatenate([taken, box[None]])
    return sample.replace(image=image)


A.occlude = paste
from retinaface_polynl.cli import main  # noqa: E402

sys.exit(main(argv))
