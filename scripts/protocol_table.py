#!/usr/bin/env python
"""How far apart the WIDER FACE protocols are, on the official toolkit's three reference sets.

``../shared/wider_official/make_synth_preds.py OUT sorted|logit|detector`` writes three seeded
prediction sets whose AP the official MATLAB toolkit printed (``expected.json``).  This script
writes each set, reads it once and scores it three ways: ``matlab`` (our default, the official
toolkit's int32 arithmetic), the same protocol with a floating-point IoU (double ground truth,
what ``expected.json`` calls ``float_iou``) and ``python-port`` (the widely used Python port).
It prints one Markdown row per set (AP in %, Easy / Medium / Hard) and how each column compares
with ``expected.json``; ``--markdown FILE`` keeps the table for docs/evaluation.md.

    OMP_NUM_THREADS=1 python scripts/protocol_table.py --markdown docs/tables/wider_protocols.md

The generator orders tied faces with numpy's unstable argsort, which depends on the SIMD code numpy
dispatches to, so it runs with numpy's AVX-512 paths disabled (as tests/test_widerface_official.py
does); exit status 1 if a column that ``expected.json`` records differs from it by more than 1e-9.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import widerface_eval as we  # noqa: E402
from markdown_report import tee_stdout  # noqa: E402

SHARED = REPO.parent / "shared"
SETS = {
    "sorted": "sorted (files sorted by score)",
    "logit": "logit (unsorted, logit scores, 2 % of images without a file)",
    "detector": "detector (unsorted, sub-pixel boxes, duplicates, boxes straddling two faces)",
}
SETTINGS = ("easy", "medium", "hard")
NUMPY_NO_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_KNL AVX512_KNM"


def score_set(generator: Path, mode: str, gt: we.WiderGroundTruth, folder: Path) -> dict[str, dict]:
    """Write one reference set with the toolkit's generator and score it under the three protocols."""
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": NUMPY_NO_AVX512, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(generator), str(folder), mode], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{generator} {mode} failed:\n{res.stderr}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the logit set has images without a file (warned)
        preds = we.read_predictions(folder, gt, progress=False)
    return {
        "matlab": we.evaluate_predictions(preds, gt),
        "float_iou": we.evaluate_predictions(preds, dataclasses.replace(gt, box_class="double")),
        "python-port": we.evaluate_predictions(preds, gt, protocol="python-port"),
    }


def cell(result: dict) -> str:
    return " / ".join(f"{100 * result[s]:.3f}" for s in SETTINGS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, default=SHARED / "wider_official",
                    help="folder with make_synth_preds.py and expected.json (default: %(default)s)")
    ap.add_argument("--gt", type=Path, default=SHARED / "data" / "widerface_val_gt",
                    help="WIDER FACE val ground truth, the four .mat files (default: %(default)s)")
    ap.add_argument("--markdown", type=Path, help="also write the printed table to this file")
    args = ap.parse_args()
    generator, expected_file = args.official / "make_synth_preds.py", args.official / "expected.json"
    for needed in (generator, expected_file, args.gt):
        if not needed.exists():
            raise SystemExit(f"{needed} not found: this table needs the official toolkit's reference sets")
    expected = json.loads(expected_file.read_text())
    gt = we.load_ground_truth(args.gt)
    rows, mismatches = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, label in SETS.items():
            r = score_set(generator, mode, gt, Path(tmp) / mode)
            rows.append(f"| {label} | {cell(r['matlab'])} | {cell(r['float_iou'])} | {cell(r['python-port'])} |")
            for ours, theirs in (("matlab", "official"), ("float_iou", "float_iou")):
                worst = max(abs(r[ours][s] - expected[theirs][mode][s]) for s in SETTINGS)
                if worst > 1e-9:
                    mismatches.append(f"{mode}: {ours} differs from expected.json {theirs} by {worst:.2e}")
    with tee_stdout(args.markdown):
        print("| set | `matlab` (= official) | float IoU (double ground truth) | `python-port` |")
        print("|---|---|---|---|")
        print("\n".join(rows))
        print()
        if mismatches:
            print("Differs from expected.json: " + "; ".join(mismatches) + ".")
        else:
            print("AP in % (Easy / Medium / Hard). `matlab` equals expected.json's `official` (the toolkit in "
                  "GNU Octave 7.3) and the float-IoU column its `float_iou`, each to 1e-9 or better.")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
