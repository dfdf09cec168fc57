"""Does an INT8 export of the shipped weights find the same faces as PyTorch?  The table of docs/export.md.

    OMP_NUM_THREADS=2 python scripts/check_int8.py --markdown docs/tables/int8_agreement.md

For each calibration below, the shipped ``weights/default.onnx`` is quantised
(``retinaface_polynl.export.quantize_int8``, at the recorded input size) and compared with
PyTorch on ``weights/default.pth`` as ``export --check`` compares (``export.verify``), within
the INT8 tolerances (box IoU >= 0.75, score within 0.1, landmarks within 10 % of the face
size), on the 13 check photos (``demo/astronaut.jpg`` and ``faces_dlib``) and the 171 crowd
photos of ``faces_mask/val.txt``.  The rule of the speed issue: INT8 becomes the CPU default
only if one calibration agrees on every photo of both sets.

* ``demo``: the CLI's default calibration (``demo/``), ``reduce_range`` (the package default);
* ``demo+dlib``: ``demo/`` and ``faces_dlib``, full 8-bit weights (the check photos are then
  in-sample);
* ``wide``: 61 photos (demo, dlib, 24 of faces_mask ``train.txt``, 24 of FDDB), full 8-bit.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from ship_default_onnx import check_photos  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def calibrations() -> dict[str, tuple[list[Path], bool]]:
    """name -> (calibration photos, reduce_range)."""
    demo = [REPO / "demo"]
    dlib = [SHARED / "faces_dlib"] if (SHARED / "faces_dlib").is_dir() else []
    out = {"demo": (demo, True), "demo+dlib": (demo + dlib, False)}
    mask = SHARED / "faces_mask" / "train.txt"
    fddb = SHARED / "faces_fddb" / "originalPics"
    if mask.is_file() and fddb.is_dir():
        from retinaface_polynl.data.voc import read_voc

        mask_photos = [r.path for r in read_voc(mask)[:24]]
        fddb_photos = sorted(fddb.rglob("*.jpg"))[:24]
        out["wide"] = (demo + dlib + mask_photos + fddb_photos, False)
    return out


def worst(checks) -> str:
    failed = [c for c in checks if not c.ok]
    if not failed:
        return "–"
    lost = sum(c.lost for c in failed)
    score = max(c.max_score_diff for c in failed)
    landmark = max(c.max_landmark_error for c in failed)
    return (f"{len(failed)} photos disagree: {lost} faces without a counterpart, score moved up to {score:.2f}, "
            f"landmarks up to {100 * landmark:.1f} %")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads of both engines")
    p.add_argument("--markdown", type=Path, help="also write the table here (docs/export.md quotes it)")
    args = p.parse_args(argv)

    from tqdm import tqdm

    from retinaface_polynl import Detector
    from retinaface_polynl.detector import default_weights_path
    from retinaface_polynl.export import calibration_batches, calibration_images, quantize_int8
    from retinaface_polynl.export.auto import shipped_onnx
    from retinaface_polynl.export.verify import TOLERANCES, verify_export

    reference = Detector(weights=default_weights_path(), backend="torch", threads=args.threads)
    size, cap, upscale_only = reference.input_rule()
    photos = check_photos(crowd_val=True)
    n_check = len(check_photos(crowd_val=False))  # the demo photo and dlib's, before the crowd photos
    check_set, crowd_set = photos[:n_check], photos[n_check:]
    fp32 = shipped_onnx(default_weights_path())
    tol = TOLERANCES["int8"]
    lines = [f"| INT8 file (calibration) | check photos ({len(check_set)}) agree | crowd val ({len(crowd_set)}) agree "
             "| disagreements |", "|---|---:|---:|---|"]
    with tempfile.TemporaryDirectory(prefix="check-int8-") as tmp:
        for name, (sources, reduce_range) in calibrations().items():
            images = calibration_images(sources, limit=64)
            path = quantize_int8(fp32, Path(tmp) / f"{name}.onnx",
                                 calibration_batches(images, size, cap, upscale_only=upscale_only), reduce_range=reduce_range)
            int8 = Detector(weights=path, threads=args.threads)
            checks = []
            for photo in tqdm(photos, desc=name, unit="photo", file=sys.stderr):
                checks += verify_export(reference, int8, [photo], tol)
            ok = [c.ok for c in checks]
            label = f"`{name}` ({len(images)} photo{'s' if len(images) != 1 else ''}{', reduce_range' if reduce_range else ', full 8-bit'})"
            lines.append(f"| {label} | {sum(ok[:n_check])} | {sum(ok[n_check:])} | {worst(checks)} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
