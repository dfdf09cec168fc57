"""WIDER FACE (Easy/Medium/Hard AP, official MATLAB-toolkit semantics) and FDDB evaluation.

Public API::

    evaluate(pred_dir, gt_dir) -> dict            # {"easy", "medium", "hard", "pr_curves", ...}
    evaluate_many(pred_dirs, gt_dir, names=None)  # {name: result}
    evaluate_predictions(predictions, gt)         # in-memory {image: (N,5) x y w h score}
    load_ground_truth(gt_dir) -> WiderGroundTruth
    read_predictions(pred_dir, gt=None) -> {image: (N,5)}
    write_prediction_file(path, image_name, boxes_xywh, scores)
    plot_pr_curves(results_by_name, out_png)
    average_precision(detections, ground_truth, iou=0.5)     # generic VOC AP on xyxy boxes
    load_fddb_annotations(fddb_dir) / evaluate_fddb(detections, annotations) -> FDDBResult

Command line: ``python -m widerface_eval PRED_DIR GT_DIR [--json FILE] [--plot FILE]``
(see ``--help``; the implementation is :func:`widerface_eval.cli.main`).
"""
from __future__ import annotations

from .ap import average_precision, box_iou, voc_ap_all_points
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
    "result_to_json",
    "voc_ap",
    "voc_ap_all_points",
    "write_fddb_detections",
    "write_prediction_file",
]
