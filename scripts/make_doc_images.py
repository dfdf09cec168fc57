"""Make the pictures under docs/images/ with the project's own commands (extend it for new ones).

    OMP_NUM_THREADS=1 python scripts/make_doc_images.py          # all of them
    OMP_NUM_THREADS=1 python scripts/make_doc_images.py anonymize

anonymize: ``docs/images/anonymize_before_after.jpg``, from ``demo/astronaut.jpg`` (NASA's
portrait of astronaut Eileen Collins, public domain, as bundled with scikit-image): the photo,
``anonymize --preview`` (the region that would be masked) and ``anonymize`` (the default blur),
side by side, each made by the command line exactly as a user would run it.

attention: ``docs/images/attention_maps.png`` (``attention demo/astronaut.jpg``); attention_cost:
``docs/images/attention_cost.png`` (``scripts/bench_attention.py``); pr: ``docs/images/pr_widerface_dev.png``
(``detect --wider-txt`` on widerface_val_dev, then ``evaluate --plot``).

detect: ``docs/images/detect_astronaut.jpg``: ``detect demo/astronaut.jpg`` (box, score and the
five landmarks drawn), as the front page shows it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
MAX_BYTES = 300_000


def run_cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "retinaface_polynl", *args]
    print("+", " ".join(cmd[2:]))
    subprocess.run(cmd, check=True, cwd=ROOT)


def captioned(image: np.ndarray, text: str, height: int = 360) -> np.ndarray:
    scale = height / image.shape[0]
    panel = cv2.resize(image, (round(image.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    bar = np.full((30, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def side_by_side(panels: list[np.ndarray], gap: int = 8) -> np.ndarray:
    h = panels[0].shape[0]
    spacer = np.full((h, gap, 3), 255, np.uint8)
    row = []
    for i, p in enumerate(panels):
        row += [p] + ([spacer] if i < len(panels) - 1 else [])
    return np.concatenate(row, axis=1)


def save_jpeg(path: Path, image: np.ndarray) -> None:
    for quality in (90, 85, 80, 70, 60):
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(data) <= MAX_BYTES:
            path.parent.mkdir(parents=True, exist_ok=True)
            data.tofile(str(path))
            print(f"{path.relative_to(ROOT)}: {len(data) // 1024} KB (JPEG quality {quality})")
            return
    raise SystemExit(f"{path}: cannot get under {MAX_BYTES} bytes")


def make_anonymize() -> None:
    photo = ROOT / "demo" / "astronaut.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        preview, masked = Path(tmp) / "preview", Path(tmp) / "masked"
        run_cli("anonymize", str(photo), "--output", str(preview), "--preview", "--quiet")
        run_cli("anonymize", str(photo), "--output", str(masked), "--quiet")
        panels = [
            captioned(cv2.imread(str(photo)), "demo/astronaut.jpg"),
            captioned(cv2.imread(str(preview / photo.name)), "anonymize --preview"),
            captioned(cv2.imread(str(masked / photo.name)), "anonymize (default: blur, ellipse, 1.5x)"),
        ]
    save_jpeg(IMAGES / "anonymize_before_after.jpg", side_by_side(panels))


def make_detect() -> None:
    photo = ROOT / "demo" / "astronaut.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        run_cli("detect", str(photo), "--output", tmp, "--quiet")
        drawn = cv2.imread(str(Path(tmp) / photo.name))
    save_jpeg(IMAGES / "detect_astronaut.jpg", captioned(drawn, "retinaface-polynl detect demo/astronaut.jpg"))


def make_attention() -> None:
    """The paper's section 5 maps (X, Y, Z = X + Y of the Poly-NL block) on the demo photo."""
    run_cli("attention", str(ROOT / "demo" / "astronaut.jpg"), "--output", str(IMAGES / "attention_maps.png"),
            "--height", "220")


def make_attention_cost() -> None:
    """Time and memory of every attention block against the number of positions (C = 256)."""
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_attention.py"), "--channels", "256", "--sizes", "16", "32",
           "64", "96", "128", "--repeats", "3", "--no-isolate", "--out", str(IMAGES / "attention_cost.png")]
    print("+", " ".join(cmd[1:]))
    subprocess.run(cmd, check=True, cwd=ROOT)


def make_pr_curve() -> None:
    """Precision-recall curves (official protocol) of the shipped model on the 103 WIDER FACE
    photos of ../shared/data/widerface_val_dev (ground truth restricted to them, as
    scripts/eval_crowd.py scores them), from ``detect --wider-txt``."""
    import json

    sys.path.insert(0, str(ROOT / "scripts"))
    from eval_crowd import subset_ground_truth
    from widerface_eval import evaluate_predictions, load_ground_truth, plot_pr_curves, read_predictions

    data = ROOT.parent / "shared" / "data"
    dev = data / "widerface_val_dev"
    if not dev.is_dir():
        raise SystemExit(f"{dev} is absent: the PR curve needs the shared WIDER dev photos")
    gt = subset_ground_truth(load_ground_truth(data / "widerface_val_gt"), json.loads((dev / "LIST.json").read_text()))
    with tempfile.TemporaryDirectory() as tmp:
        run_cli("detect", str(dev / "images"), "--wider-txt", tmp, "--threshold", "0.02", "--quiet")
        result = evaluate_predictions(read_predictions(tmp, gt), gt)
    print({k: round(result[k], 4) for k in ("easy", "medium", "hard")})
    plot_pr_curves({"shipped model (WIDER dev, 103 photos)": result}, IMAGES / "pr_widerface_dev.png",
                   per_setting_files=False)


MAKERS = {"anonymize": make_anonymize, "detect": make_detect, "attention": make_attention,
          "attention_cost": make_attention_cost, "pr": make_pr_curve}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", choices=[[], *MAKERS], help=f"pictures to make (default: all of {', '.join(MAKERS)})")
    args = p.parse_args()
    for name in args.names or MAKERS:
        MAKERS[name]()


if __name__ == "__main__":
    main()
