"""WIDER FACE (Easy/Medium/Hard AP) and FDDB evaluation.

WIDER FACE has two protocols (``protocol=`` / ``--protocol``):

* ``"matlab"`` (default): the official MATLAB toolkit bit for bit, MATLAB's
  types included.  Its ground truth is int32, and int32/double arithmetic
  rounds: in ``boxoverlap.m`` the prediction's corners enter at whole pixels
  and the IoU itself is rounded to 0 or 1, so a prediction takes the *first*
  face in file order whose IoU reaches 0.5 (after rounding), not the best
  one.  Checked against the toolkit's own output (GNU Octave) to 1e-15.
* ``"python-port"``: the widely used Python port (WiderFace-Evaluation, as
  copied into Pytorch_Retinaface): float IoU, best face, rows in file order,
  float64 normalisation starting from max 0 / min 1.

See :mod:`widerface_eval.protocol` and ``docs/evaluation.md`` for every step.

Public API::

    evaluate(pred_dir, gt_dir, protocol="matlab") -> dict   # {"easy", "medium", "hard", "protocol", "pr_curves", ...}
    evaluate_many(pred_dirs, gt_dir, names=None)  # {name: result}
    evaluate_predictions(predictions, gt)         # in-memory {image: (N,5) x y w h score}
    resampled_ap(predictions, gt, samples)        # {setting: AP per resample of the images} (bootstrap)
    load_ground_truth(gt_dir) -> WiderGroundTruth
    read_predictions(pred_dir, gt=None) -> {image: (N,5)}
    write_prediction_file(path, image_name, boxes_xywh, scores)
    plot_pr_curves(results_by_name, out_png)
    average_precision(detections, ground_truth, iou=0.5)     # generic VOC AP on xyxy boxes
    resampled_average_precision(detections, ground_truth, samples)  # the same per resample of the images
    load_fddb_annotations(fddb_dir) / evaluate_fddb(detections, annotations) -> FDDBResult

Command line: ``python -m widerface_eval PRED_DIR GT_DIR [--protocol matlab|python-port|both]
[--json FILE] [--plot FILE]`` (see ``--help``; the implementation is
:func:`widerface_eval.cli.main`).
"""
from __future__ import annotations

from .ap import average_precision, box_iou, resampled_average_precision, voc_ap_all_points
from .errors import (
    ApproximateSettingsWarning,
    GroundTruthError,
    MissingPredictionsWarning,
    NegativeSizeWarning,
    PredictionFormatError,
)
from .fddb import FDDBAnnotation, FDDBResult, evaluate_fddb, load_fddb_annotations, read_fddb_detections, write_fddb_detections
from .groundtruth import SETTINGS, WiderGroundTruth, load_ground_truth
from .io import read_prediction_file, read_predictions, write_prediction_file
from .plots import plot_fddb_roc, plot_pr_curves
from .protocol import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    evaluate,
    evaluate_many,
    evaluate_predictions,
    normalize_scores,
    resampled_ap,
    result_to_json,
    voc_ap,
)

__all__ = [
    "ApproximateSettingsWarning",
    "DEFAULT_PROTOCOL",
    "FDDBAnnotation",
    "FDDBResult",
    "GroundTruthError",
    "MissingPredictionsWarning",
    "NegativeSizeWarning",
    "PROTOCOLS",
    "PredictionFormatError",
    "SETTINGS",
    "WiderGroundTruth",
    "average_precision",
    "box_iou",
    "evaluate",
    "evaluate_fddb",
    "evaluate_many",
    "evaluate_predictions",
    "load_fddb_annotations",
    "load_ground_truth",
    "normalize_scores",
    "plot_fddb_roc",
    "plot_pr_curves",
    "read_fddb_detections",
    "read_prediction_file",
    "read_predictions",
    "resampled_ap",
    "resampled_average_precision",
    "result_to_json",
    "voc_ap",
    "voc_ap_all_points",
    "write_fddb_detections",
    "write_prediction_file",
]
