#!/usr/bin/env python
"""Make weights/default.onnx from weights/default.pth: export, check against PyTorch, write, print the checksum.

    python scripts/ship_default_onnx.py                    # after shipping new weights/default.pth
    python scripts/ship_default_onnx.py --crowd-val        # also check on faces_mask/val.txt (~5 min)
    python scripts/ship_default_onnx.py --update-readme    # also write the new SHA-256 into weights/README.md

What it does, in order:

1. exports the checkpoint with the package's own exporter (``retinaface_polynl.export``: the
   same graph as ``retinaface-polynl export --format onnx``), recording in the file's
   metadata the checkpoint's input-size hint (``inference``), so onnxruntime resizes
   pictures exactly as PyTorch does, and the checkpoint's SHA-256 (``source_sha256``), so
   ``Detector()`` refuses a file left over from other weights;
2. checks it as ``export --check`` does: every face that PyTorch and the file find on the
   check photos (``demo/astronaut.jpg`` and the twelve photos of ``../shared/data/faces_dlib``;
   with ``--crowd-val`` also the 171 crowd photos of ``faces_mask/val.txt``), at the
   recorded input size, within the fp32 tolerances (box IoU >= 0.99, score within 1e-3,
   landmarks within 0.5 % of the face size);
3. only if they agree, writes ``weights/default.onnx`` (atomically) and prints its SHA-256
   and size for ``weights/README.md``.  Exit status 1 if they disagree (nothing written).

The export is deterministic: the same checkpoint gives the same bytes, so re-running it on
unchanged weights leaves the file (and its stated checksum) as it was.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from retinaface_polynl.export.auto import SHIPPED_ONNX, export_checkpoint, file_sha256  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
README_PATTERN = re.compile(r"(`default\.onnx` \([0-9.]+ MB, SHA-256 `)([0-9a-f]{64})(`)")


def check_photos(crowd_val: bool) -> list[Path]:
    photos = [REPO / "demo" / "astronaut.jpg"]
    dlib = SHARED / "faces_dlib"
    if dlib.is_dir():
        photos += sorted(dlib.glob("*.jpg"))
    else:
        print(f"note: {dlib} is absent: checking on the demo photo alone", file=sys.stderr)
    if crowd_val:
        listing = SHARED / "faces_mask" / "val.txt"
        if not listing.is_file():
            raise SystemExit(f"--crowd-val: {listing} is absent")
        from retinaface_polynl.data.voc import read_voc

        photos += [r.path for r in read_voc(listing)]
    return photos


def check(checkpoint: Path, onnx_path: Path, photos: list[Path], threads: int | None) -> bool:
    from tqdm import tqdm

    from retinaface_polynl import Detector
    from retinaface_polynl.export.verify import TOLERANCES, format_checks, verify_export

    reference = Detector(weights=checkpoint, backend="torch", threads=threads)
    exported = Detector(weights=onnx_path, threads=threads)
    if exported.input_rule() != reference.input_rule():
        print(f"{onnx_path}: records input size {exported.describe_input()}, the checkpoint "
              f"{reference.describe_input()}", file=sys.stderr)
        return False
    if exported.zoom_rule != reference.zoom_rule:
        print(f"{onnx_path}: records {exported.describe_zoom()}, the checkpoint {reference.describe_zoom()}",
              file=sys.stderr)
        return False
    tolerance = TOLERANCES["fp32"]
    checks = []
    for photo in tqdm(photos, desc="check", unit="photo", file=sys.stderr):
        checks += verify_export(reference, exported, [photo], tolerance)
    failed = [c for c in checks if not c.ok]
    shown = checks if len(checks) <= 20 else failed  # the crowd set: only the photos that disagree
    if shown:
        print(format_checks(shown, tolerance))
    print(f"{len(checks) - len(failed)}/{len(checks)} photos agree, "
          f"{sum(c.faces[0] for c in checks)} PyTorch faces compared at the recorded input size")
    return not failed


def update_readme(readme: Path, digest: str, size_mb: float) -> bool:
    text = readme.read_text(encoding="utf-8")
    new, count = README_PATTERN.subn(lambda m: f"`default.onnx` ({size_mb:.1f} MB, SHA-256 `{digest}`", text)
    if count != 1:
        print(f"{readme}: no line like \"`default.onnx` (3.7 MB, SHA-256 `...`\" to update; add it by hand",
              file=sys.stderr)
        return False
    readme.write_text(new, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=REPO / "weights" / "default.pth",
                   help="checkpoint to export (default: weights/default.pth)")
    p.add_argument("--output", type=Path, help=f"file to write (default: {SHIPPED_ONNX} beside --weights)")
    p.add_argument("--crowd-val", action="store_true",
                   help="also check on the crowd validation photos (faces_mask/val.txt, 171 photos, ~5 min)")
    p.add_argument("--threads", type=int, help="threads for the check (default: torch's)")
    p.add_argument("--update-readme", action="store_true",
                   help="write the new SHA-256 into the `default.onnx` line of the README beside --weights")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if not args.weights.is_file():
        print(f"error: {args.weights}: no such checkpoint", file=sys.stderr)
        return 2
    output = args.output or args.weights.with_name(SHIPPED_ONNX)
    photos = check_photos(args.crowd_val)
    with tempfile.TemporaryDirectory(prefix=".ship-onnx-", dir=output.parent) as tmp:
        candidate = export_checkpoint(args.weights, Path(tmp) / SHIPPED_ONNX)
        print(f"exported {args.weights} ({file_sha256(args.weights)[:16]}...) with retinaface_polynl.export; "
              f"checking against PyTorch on {len(photos)} photo(s)")
        if not check(args.weights, candidate, photos, args.threads):
            print(f"error: the export does not find PyTorch's faces within the fp32 tolerances; {output} not written",
                  file=sys.stderr)
            return 1
        digest = file_sha256(candidate)
        unchanged = output.is_file() and file_sha256(output) == digest
        if not unchanged:
            candidate.replace(output)
    size_mb = output.stat().st_size / 1e6
    print(f"{'unchanged' if unchanged else 'wrote'} {output} ({size_mb:.1f} MB)")
    print(f"SHA-256 {digest}")
    print(f"weights/README.md line: `default.onnx` ({size_mb:.1f} MB, SHA-256 `{digest}`)")
    if args.update_readme:
        readme = args.weights.with_name("README.md")
        if update_readme(readme, digest, size_mb):
            print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
