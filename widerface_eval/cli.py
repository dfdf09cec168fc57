"""Command line: ``python -m widerface_eval PRED_DIR GT_DIR [--protocol P] [--json FILE] [--plot FILE]``.

:func:`main` takes an argv list and returns the exit status (0 success, 2
bad input, 1 other errors), so that other CLIs (``retinaface-polynl
evaluate``) can wrap it; :func:`run_evaluation` is the same without argparse.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from .errors import GroundTruthError, PredictionFormatError

DESCRIPTION = """\
Evaluate face detections on WIDER FACE val (Easy / Medium / Hard AP) or on
FDDB (official discrete and continuous ROC plus AP at IoU 0.5).

WIDER FACE: PRED is a folder in the official submission layout,
<event>/<image>.txt holding the image name, the number of boxes, then
'x y w h score' lines (any real scores: logits are min-max normalised like
probabilities).  GT is the folder with wider_face_val.mat and
wider_{easy,medium,hard}_val.mat (or, approximately, wider_face_val_bbx_gt.txt).
Two protocols (--protocol):
  matlab       (default) the official MATLAB toolkit, bit for bit.  Its ground
               truth is int32, and MATLAB's int32/double arithmetic rounds: the
               prediction's corners enter at whole pixels and the IoU itself is
               rounded to 0 or 1 (1 when 2 x intersection >= union), so a
               prediction takes the FIRST face in file order reaching IoU 0.5,
               not the best one.  Scores min-max normalised in single precision;
               rows sorted by score.
  python-port  the widely used Python port (WiderFace-Evaluation, as in
               Pytorch_Retinaface): floating-point IoU, best face, rows in FILE
               order (unsorted files evaluate differently), float64 min-max
               normalisation starting from max 0 / min 1.
  both         both, side by side (the folders are read once).
Numbers published with the MATLAB toolkit reproduce with 'matlab', numbers
from RetinaFace re-implementations with 'python-port'; see docs/evaluation.md.

FDDB: PRED is a detection file (or folder of them) in the official FDDB format
(image name, count, 'x y w h score' lines); GT is the FDDB folder holding
annotations.json or FDDB-folds/.  The benchmark is detected from GT's content.

Several prediction folders can be compared: repeat --pred (and --name).
"""

EPILOG = """\
examples:
  python -m widerface_eval runs/val_preds ../shared/data/widerface_val_gt --json ap.json --plot pr.png
  python -m widerface_eval runs/val_preds ../shared/data/widerface_val_gt --protocol both
  python -m widerface_eval --pred a/ --name A --pred b/ --name B --gt GT --plot pr.png
  python -m widerface_eval fddb_dets.txt ../shared/data/faces_fddb --folds 1-8 --plot roc.png

The JSON holds "protocol", "easy", "medium", "hard" as fractions (first
method, first protocol) and "methods" with every method's APs and curves
under that protocol; with --protocol both also "by_protocol":
{protocol: {method: ...}}.  With --plot FILE.png the figure has one panel per
setting and FILE_<setting>.png holds each setting alone.
Exit status: 0 success, 2 malformed predictions or ground truth (one-line
message naming the file and line), 1 other errors.
"""

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m widerface_eval",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pred_dir", nargs="?", help="prediction folder (WIDER) or detection file/folder (FDDB)")
    p.add_argument("gt_dir", nargs="?", help="ground-truth folder")
    p.add_argument("--pred", action="append", default=[], metavar="DIR",
                   help="a prediction folder; repeat to compare several methods")
    p.add_argument("--name", action="append", default=[], metavar="NAME",
                   help="legend name of each prediction folder, in order (default: folder name)")
    p.add_argument("--gt", metavar="DIR", help="ground-truth folder (alternative to the positional GT_DIR)")
    p.add_argument("--benchmark", choices=("auto", "widerface", "fddb"), default="auto",
                   help="which protocol; 'auto' (default) decides from the ground-truth folder's files")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--no-curves", action="store_true", help="leave the PR/ROC curves out of the JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw PR curves (WIDER) or ROC curves (FDDB) as PNG")
    p.add_argument("--protocol", choices=("matlab", "python-port", "both"), default=None,
                   help="WIDER FACE protocol: 'matlab' = the official toolkit, bit for bit (default); "
                        "'python-port' = the widely used Python port; 'both' = side by side")
    p.add_argument("--folds", metavar="LIST", help="FDDB folds to evaluate, e.g. '1-8' or '9,10' (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _detect_benchmark(gt: Path) -> str:
    if gt.is_file():
        return "fddb" if gt.suffix == ".json" else "widerface"
    if (gt / "annotations.json").is_file() or (gt / "FDDB-folds").is_dir() or any(gt.glob("FDDB-fold-*")):
        return "fddb"
    return "widerface"


def format_table(results: dict[str, dict], settings: Sequence[str] = ("easy", "medium", "hard")) -> str:
    """Plain-text AP table, one row per entry of ``results``, headed by the protocol(s) they were computed with."""
    from .protocol import PROTOCOLS

    protocols = list(dict.fromkeys(r.get("protocol", "matlab") for r in results.values()))
    lines = [f"WIDER FACE val AP, protocol {p}: {PROTOCOLS[p].summary}" for p in protocols if p in PROTOCOLS]
    width = max([len("method")] + [len(n) for n in results])
    head = f"{'method':<{width}}  " + "  ".join(f"{s.capitalize():>8}" for s in settings)
    lines += [head, "-" * len(head)]
    for name, r in results.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{r[s]:8.4f}" for s in settings))
    return "\n".join(lines)


def run_evaluation(
    pred_dirs: Sequence[str | Path],
    gt_dir: str | Path,
    names: Sequence[str] | None = None,
    json_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    benchmark: str = "auto",
    folds: str | None = None,
    progress: bool = True,
    include_curves: bool = True,
    out=None,
    protocol: str | None = None,
) -> dict:
    """Evaluate ``pred_dirs`` against ``gt_dir``, print the table, write JSON/plots; return the results.

    For WIDER FACE the results are ``{name: evaluate(...) dict}`` (with
    ``protocol="both"``: ``{name: {"matlab": ..., "python-port": ...}}``),
    for FDDB ``{name: FDDBResult}``.  ``protocol``: ``"matlab"`` (default),
    ``"python-port"`` or ``"both"`` (WIDER FACE only).  ``out`` is the
    stream for the table (stdout).
    """
    out = sys.stdout if out is None else out
    from .protocol import default_names, evaluate, result_to_json, write_json

    gt_dir = Path(gt_dir)
    names = list(names) if names else default_names(pred_dirs)
    if len(names) != len(pred_dirs):
        raise ValueError(f"{len(pred_dirs)} prediction folders but {len(names)} --name values")
    kind = _detect_benchmark(gt_dir) if benchmark == "auto" else benchmark
    if kind == "fddb" and protocol is not None:
        raise ValueError("--protocol applies to WIDER FACE only (FDDB has one official protocol)")
    if kind == "fddb":
        from .fddb import evaluate_fddb, load_fddb_annotations, read_fddb_detections

        ann = load_fddb_annotations(gt_dir, folds)
        results = {n: evaluate_fddb(read_fddb_detections(p), ann) for n, p in zip(names, pred_dirs)}
        width = max([len("method")] + [len(n) for n in names])
        print(f"{'method':<{width}}  {'AP@0.5':>8}  {'TPR@1000FP':>10}  {'cont@1000FP':>11}", file=out)
        for n, r in results.items():
            print(f"{n:<{width}}  {r.ap50:8.4f}  {r.tpr_at(1000):10.4f}  {r.tpr_at(1000, 'continuous'):11.4f}", file=out)
        if json_path:
            methods = {n: r.to_dict(include_curves) for n, r in results.items()}
            first = next(iter(methods.values()))
            payload = {k: v for k, v in first.items() if k not in ("roc", "pr50")}
            write_json(json_path, {"benchmark": "fddb", **payload, "methods": methods})
        if plot_path:
            from .plots import plot_fddb_roc

            for p in plot_fddb_roc(results, plot_path):
                print(f"wrote {p}", file=out)
        return results

    from .groundtruth import load_ground_truth

    gt = load_ground_truth(gt_dir)
    protocols = ["matlab", "python-port"] if protocol == "both" else [protocol or "matlab"]
    by_name = {n: evaluate(p, gt, progress=progress, protocol=protocols) for n, p in zip(names, pred_dirs)}
    by_protocol = {pr: {n: r[pr] for n, r in by_name.items()} for pr in protocols}
    if len(protocols) == 1:
        rows = by_protocol[protocols[0]]
    else:  # side by side: each method's protocols on consecutive rows
        rows = {f"{n} [{pr}]": by_protocol[pr][n] for n in by_name for pr in protocols}
    settings = list(gt.settings)
    print(format_table(rows, settings), file=out)
    if not gt.official:
        print("note: approximate Easy/Medium/Hard (text ground truth); the official split needs the .mat files", file=out)
    for n, per in by_name.items():
        r = per[protocols[0]]
        if r["missing_images"]:
            print(f"note: {n}: {len(r['missing_images'])} image(s) without a prediction file counted as no detections",
                  file=out)
        if r["num_negative_sizes"]:
            print(f"note: {n}: {r['num_negative_sizes']} box(es) with a negative width or height, evaluated as "
                  "written (false positives in practice)", file=out)
    if json_path:
        first_p = protocols[0]
        methods = {n: result_to_json(r, include_curves) for n, r in by_protocol[first_p].items()}
        first = next(iter(by_protocol[first_p].values()))
        payload = {"benchmark": "widerface", "protocol": first_p, **{s: float(first[s]) for s in settings},
                   "official_split": gt.official, "methods": methods}
        if len(protocols) > 1:
            payload["protocols"] = protocols
            payload["by_protocol"] = {
                pr: {n: result_to_json(r, include_curves) for n, r in rs.items()} for pr, rs in by_protocol.items()
            }
        write_json(json_path, payload)
    if plot_path:
        from .plots import plot_pr_curves

        for p in plot_pr_curves(rows, plot_path, settings):
            print(f"wrote {p}", file=out)
    return by_name if len(protocols) > 1 else {n: per[protocols[0]] for n, per in by_name.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (see ``--help``)."""
    parser = build_parser()
    return execute(parser, parser.parse_args(argv))


def execute(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run an evaluation from parsed arguments (shared with ``retinaface-polynl evaluate``)."""
    preds = ([args.pred_dir] if args.pred_dir else []) + list(args.pred)
    gt = args.gt
    if args.gt_dir:
        if gt:
            parser.error("give the ground truth either as GT_DIR or as --gt, not both")
        gt = args.gt_dir
    if not preds:
        parser.error("no prediction folder given (PRED_DIR or --pred)")
    if not gt:
        parser.error("no ground-truth folder given (GT_DIR or --gt)")
    if args.name and len(args.name) != len(preds):
        parser.error(f"{len(preds)} prediction folder(s) but {len(args.name)} --name value(s)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the table's notes say the same in one line each
            run_evaluation(
                preds, gt, names=args.name or None, json_path=args.json, plot_path=args.plot,
                benchmark=args.benchmark, folds=args.folds, progress=not args.no_progress,
                include_curves=not args.no_curves, protocol=getattr(args, "protocol", None),
            )
    except (PredictionFormatError, GroundTruthError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
