"""Exceptions and warnings raised on bad input.

Every problem found in a prediction file or a ground-truth folder is reported
with the file (and, where it applies, the 1-based line) it was found in;
nothing is silently dropped.
"""
from __future__ import annotations

from pathlib import Path


class _LocatedError(ValueError):
    """A ``ValueError`` whose message starts with ``file:line:``."""

    def __init__(self, path: str | Path | None, message: str, line: int | None = None):
        self.path = None if path is None else Path(path)
        self.line = line
        self.reason = message
        where = "" if path is None else str(path)
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class PredictionFormatError(_LocatedError):
    """A prediction (detection) file is malformed or does not fit the ground truth.

    Attributes ``path`` (the file), ``line`` (1-based line number or ``None``)
    and ``reason`` (the message without the location) are available.
    """


class GroundTruthError(_LocatedError):
    """The ground truth is missing a file, or a file in it is malformed."""


class MissingPredictionsWarning(UserWarning):
    """Some ground-truth images have no prediction file (they count as no detections)."""


class ApproximateSettingsWarning(UserWarning):
    """Ground truth was read from the text layout: Easy/Medium/Hard are approximations."""


class NegativeSizeWarning(UserWarning):
    """Some prediction boxes have a negative width or height.

    They are evaluated as the toolkit evaluates them (``x2 = x + w`` left of
    ``x``): in practice they overlap no face and count as false positives.
    """
