"""Reading and writing predictions in the official WIDER FACE submission layout.

Layout (one text file per image, ``<pred_dir>/<event>/<image>.txt``)::

    <image name>            # e.g. 0_Parade_marchingband_1_465 (a path or .jpg suffix is accepted)
    <number of boxes N>
    x y w h score           # N lines, pixels, (x, y) = top-left corner
    ...

Validation rules (each violation raises :class:`PredictionFormatError` naming
the file and the line).  We accept what the official toolkit reads and refuse
what it cannot read, loudly (``read_pred.m`` itself prints "Invalid format"
and silently evaluates such an image as having no predictions):

* line 1 must name the image; its base name without extension must equal the
  file name without ``.txt`` (the toolkit ignores this line);
* line 2 must be a non-negative integer ``N``; exactly ``N`` box lines must
  follow (blank lines after them are allowed, anything else is an error:
  the toolkit silently drops the image when fewer lines follow, and silently
  ignores lines beyond ``N``);
* every box line holds at least five numbers ``x y w h score`` separated by
  white space; further numbers are ignored, as the toolkit (``str2num`` then
  the first five values) and the Python port ignore them; a non-numeric
  field is an error;
* NaN or infinite values are errors (the toolkit would read them, but a NaN
  or infinite score turns every normalised score into NaN, and MATLAB and
  Octave disagree on ``min``/``max`` with a NaN coordinate);
* any real score is accepted, negative ones included: the toolkit min-max
  normalises whatever it reads, so detectors that write logits are evaluated
  exactly as the toolkit evaluates them;
* ``x``/``y`` may be negative (boxes that start a little outside the image;
  the toolkit never clips), and so may ``w``/``h``: the toolkit does not
  refuse them and evaluates ``x2 = x + w`` as written, so a box with a
  negative width or height in practice overlaps no face and counts as a
  false positive.  :func:`widerface_eval.evaluate` warns about them
  (:class:`NegativeSizeWarning`), since they usually mean a bug in the
  writer.
"""
from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

import numpy as np

from .errors import MissingPredictionsWarning, NegativeSizeWarning, PredictionFormatError

if TYPE_CHECKING:  # pragma: no cover
    from .groundtruth import WiderGroundTruth

__all__ = [
    "image_stem",
    "parse_prediction_text",
    "read_prediction_file",
    "check_inside",
    "iter_predictions",
    "prediction_files",
    "read_predictions",
    "write_prediction_file",
]

_INT_RE = re.compile(r"^[+]?\d+$")


def image_stem(name: str) -> str:
    """``'0--Parade/0_Parade_x_465.jpg'`` -> ``'0_Parade_x_465'`` (base name, no extension)."""
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if dot and ext.lower() in {"jpg", "jpeg", "png", "bmp", "txt"}:
        return stem
    return base


def parse_prediction_text(text: str, path: str | Path = "<string>", expected_name: str | None = None) -> np.ndarray:
    """Parse the content of one prediction file into an ``(N, 5)`` float64 array.

    Rows are ``x y w h score`` in file order (sorting is the evaluator's job).
    ``expected_name`` (an image stem) is compared with the file's first line.
    """
    return _parse_lines(iter(text.splitlines()), path, expected_name, size_hint=len(text))


# Box lines are converted this many at a time: reading a file holds its (N, 5) array plus one
# chunk of text, never the whole text split into Python strings (a 267 MB file peaked at 11.6 GB).
_CHUNK = 4096
_MIN_BOX_LINE = 10  # bytes of the shortest box line, "0 0 0 0 0\n": bounds what a count line can claim


def _parse_lines(lines, path: str | Path, expected_name: str | None, size_hint: int | None = None) -> np.ndarray:
    """One prediction file from an iterator over its lines (without line ends), streaming: the
    box lines are converted :data:`_CHUNK` at a time into one preallocated array."""
    header = next(lines, None)
    if header is None or not header.strip():
        raise PredictionFormatError(path, "missing image name on the first line", line=1)
    header = header.strip()
    if expected_name is not None and image_stem(header) != expected_name:
        raise PredictionFormatError(
            path, f"first line names image {header[:80]!r} but the file is for image {expected_name!r}", line=1
        )
    count_field = next(lines, None)
    if count_field is None or not count_field.strip():
        raise PredictionFormatError(path, "missing the number of boxes on the second line", line=2)
    count_field = count_field.strip()
    if not _INT_RE.match(count_field):
        raise PredictionFormatError(
            path, f"second line must be the number of boxes (a non-negative integer), got {count_field[:60]!r}", line=2
        )
    count = int(count_field)
    # a count the file cannot hold is found short below; never allocate for it up front
    room = count if size_hint is None else min(count, size_hint // _MIN_BOX_LINE + 1)
    arr = np.empty((min(count, room), 5), dtype=np.float64)
    done = 0
    chunk: list[str] = []

    def flush() -> None:
        nonlocal arr, done
        if done + len(chunk) > len(arr):  # only when the count outgrew the size hint: grow
            arr = np.concatenate([arr, np.empty((max(len(chunk), len(arr)), 5), np.float64)])
        arr[done:done + len(chunk)] = _parse_box_lines(chunk, path, first_line=3 + done)
        done += len(chunk)
        chunk.clear()

    line_no = 2
    for line_no, line in enumerate(lines, start=3):
        if done + len(chunk) < count:
            chunk.append(line)
            if len(chunk) == _CHUNK:
                flush()
        elif line.strip():
            raise PredictionFormatError(
                path,
                f"unexpected content after the {count} box line(s) announced on line 2: {line.strip()[:60]!r} "
                "(wrong count line?)",
                line=line_no,
            )
    if chunk:
        flush()
    if done < count:
        raise PredictionFormatError(
            path, f"the count line says {count} boxes but only {done} box line(s) follow", line=2 + done + 1
        )
    return arr[:count] if len(arr) != count else arr


def _parse_box_lines(box_lines: list[str], path: str | Path, first_line: int) -> np.ndarray:
    """``x y w h score`` lines (further numbers ignored) -> (n, 5) float64, checked."""
    fields = [ln.split() for ln in box_lines]
    for i, f in enumerate(fields):
        if len(f) < 5:
            raise PredictionFormatError(
                path, f"expected 5 numbers 'x y w h score', got {len(f)} field(s): {box_lines[i].strip()[:60]!r}",
                line=first_line + i,
            )
    try:
        values = np.array([v for f in fields for v in f], dtype=np.float64)
    except ValueError:
        for i, f in enumerate(fields):  # locate the offending line
            for v in f:
                try:
                    float(v)
                except ValueError:
                    raise PredictionFormatError(path, f"non-numeric field {v[:40]!r}", line=first_line + i) from None
        raise  # pragma: no cover - numpy and float() disagree
    lengths = np.array([len(f) for f in fields])
    if (lengths == 5).all():
        arr = values.reshape(-1, 5)
    else:  # extra numbers after the score: ignored, as the toolkit and the port ignore them
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        arr = values[first[:, None] + np.arange(5)]
    _check_values(arr, path, first_line=first_line)
    return arr


def _check_values(arr: np.ndarray, path: str | Path, first_line: int) -> None:
    """Reject NaN and infinity (see module docstring); negative w, h and scores are valid."""
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise PredictionFormatError(
            path, f"{'xywh'[j] if j < 4 else 'score'} is {arr[i, j]} (NaN and infinity are not allowed)", line=first_line + int(i)
        )


def read_prediction_file(path: str | Path, expected_name: str | None = None) -> np.ndarray:
    """Read one ``<image>.txt`` prediction file -> ``(N, 5)`` array ``x y w h score`` (file order).

    ``expected_name`` defaults to the file name without ``.txt``.  The file is read line by line:
    memory holds its array of boxes and a bounded chunk of text, whatever the file's size.
    """
    path = Path(path)
    if expected_name is None:
        expected_name = path.stem
    try:
        return _parse_lines(text_lines(path), path, expected_name, size_hint=path.stat().st_size)
    except UnicodeDecodeError as exc:
        raise PredictionFormatError(path, f"not a UTF-8 text file ({exc.reason})") from None


def text_lines(path: str | Path) -> Iterator[str]:
    """The lines of a UTF-8 text file one at a time, exactly as ``read_text().splitlines()`` gives
    them (splitting, as it does, at form feeds and the other Unicode line breaks too, not only at
    line ends): a file read streaming is split as its text parsed whole (:func:`parse_prediction_text`)."""
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            yield from raw.splitlines()


def check_inside(folder: str | Path, files: Iterable[Path]) -> None:
    """Refuse any of ``files`` (found below ``folder``) that is a symbolic link leading out of
    ``folder``: :class:`PredictionFormatError` naming the link, never reading what it points to
    (an error message quoting its first line would show a file the user did not mean to share)."""
    root = Path(folder).resolve()
    for f in files:
        target = Path(f).resolve()
        if target != root and root not in target.parents:
            raise PredictionFormatError(
                f, "is a symbolic link that leads out of the prediction folder; refusing to read it "
                "(copy the file into the folder if it belongs there)"
            )


def _prediction_files(pred_dir: Path) -> list[Path]:
    return sorted(
        p for p in pred_dir.rglob("*.txt")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(pred_dir).parts)
    )


def prediction_files(pred_dir: str | Path, gt: "WiderGroundTruth | None" = None) -> list[tuple[str, Path]]:
    """The files of a folder in the official layout, checked before any is read -> ``[(image name, path)]``.

    Every ``*.txt`` below ``pred_dir`` (hidden files and folders excepted), sorted by path.  A symbolic
    link leading out of the folder is refused (:func:`check_inside`).  With ``gt`` given, each file must
    be ``<event>/<image>.txt`` for an image of the ground truth: an unknown image name, a file in the
    wrong event folder or two files for one image raise :class:`PredictionFormatError`.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise PredictionFormatError(pred_dir, "prediction folder does not exist or is not a folder")
    files = _prediction_files(pred_dir)
    check_inside(pred_dir, files)
    event_of = None if gt is None else dict(zip(gt.images, gt.events))
    out: list[tuple[str, Path]] = []
    where: dict[str, Path] = {}
    for path in files:
        name = path.stem
        if event_of is not None:
            if name not in event_of:
                raise PredictionFormatError(path, f"unknown image name {name!r}: not an image of the ground truth")
            rel = path.relative_to(pred_dir)
            if len(rel.parts) != 2 or rel.parts[0] != event_of[name]:
                raise PredictionFormatError(
                    path, f"image {name!r} belongs in {event_of[name]}/{name}.txt (official layout <event>/<image>.txt)"
                )
        if name in where:
            raise PredictionFormatError(path, f"second prediction file for image {name!r} (first: {where[name]})")
        where[name] = path
        out.append((name, path))
    return out


def iter_predictions(
    files: Iterable[tuple[str, Path]], progress: bool = True, desc: str = "reading"
) -> Iterator[tuple[str, np.ndarray]]:
    """Read the files of :func:`prediction_files` one at a time -> ``(image name, (N, 5) array)``:
    only one file's boxes are held at once."""
    files = list(files)
    iterator: Iterable[tuple[str, Path]] = files
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(files, desc=desc, unit="file", leave=False)
    for name, path in iterator:
        yield name, read_prediction_file(path, name)


def read_predictions(
    pred_dir: str | Path,
    gt: "WiderGroundTruth | None" = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Read a folder in the official layout -> ``{image name: (N, 5) array}``.

    Every ``*.txt`` below ``pred_dir`` (hidden files and folders excepted) is
    read.  With ``gt`` given, each file must be ``<event>/<image>.txt`` for an
    image of the ground truth: an unknown image name, a file in the wrong
    event folder or two files for one image raise
    :class:`PredictionFormatError`.  Images of ``gt`` without a file are
    *not* an error (the toolkit counts them as no detections); :func:`evaluate`
    warns about them.  This holds every box of the folder at once;
    :func:`widerface_eval.evaluate` reads a folder streaming instead.
    """
    files = prediction_files(pred_dir, gt)
    return dict(iter_predictions(files, progress, desc=f"reading {Path(pred_dir).name or pred_dir}"))


def warn_missing(missing: list[str], source: str | Path) -> None:
    """Emit one :class:`MissingPredictionsWarning` listing how many images lack a file."""
    if not missing:
        return
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    warnings.warn(
        f"{source}: {len(missing)} image(s) of the ground truth have no prediction file and count as "
        f"no detections (their faces still count in the recall): {shown}",
        MissingPredictionsWarning,
        stacklevel=3,
    )


def warn_negative_sizes(count: int, source: str | Path) -> None:
    """Emit one :class:`NegativeSizeWarning` when ``count`` boxes have a negative width or height."""
    if not count:
        return
    warnings.warn(
        f"{source}: {count} box(es) have a negative width or height; they are evaluated as the toolkit "
        "evaluates them (x2 = x + w as written: in practice no face is found, the box counts as a false "
        "positive). Boxes are 'x y w h', not 'x1 y1 x2 y2'",
        NegativeSizeWarning,
        stacklevel=3,
    )


def _format_number(v: float, decimals: int) -> str:
    s = f"{v:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def write_prediction_file(
    path: str | Path,
    image_name: str,
    boxes_xywh,
    scores,
    box_decimals: int = 2,
) -> Path:
    """Write one image's detections in the official layout, atomically.

    ``boxes_xywh`` is ``(N, 4)`` (x, y, w, h in pixels), ``scores`` ``(N,)``.
    The header line is the image's base name without extension (what the
    official tools and :func:`read_prediction_file` expect).  Scores are
    written with 9 significant digits so that distinct scores stay distinct.
    The file is written to a temporary file in the same folder and renamed
    over ``path`` (``os.replace``), so a reader never sees half a file.
    Raises ``ValueError`` for inputs that :func:`read_prediction_file` would
    reject (NaN, infinity, shape mismatch) and for negative widths or heights
    (the toolkit would evaluate them, but no detector means them); negative
    scores (logits) are written as they are.
    """
    path = Path(path)
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4) if np.size(boxes_xywh) else np.zeros((0, 4))
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{path}: {len(boxes)} boxes but {len(scores)} scores")
    arr = np.concatenate([boxes, scores[:, None]], axis=1)
    try:
        _check_values(arr, path, first_line=3)
    except PredictionFormatError as exc:
        raise ValueError(f"refusing to write {exc}") from None
    neg = arr[:, 2:4] < 0
    if neg.any():
        i, j = np.argwhere(neg)[0]
        raise ValueError(
            f"refusing to write {path}: box {int(i)} has a negative {('width', 'height')[j]} {arr[i, j + 2]:g} "
            "(boxes are x y w h)"
        )
    stem = image_stem(image_name)
    if not stem or any(c.isspace() for c in stem):
        raise ValueError(f"{path}: invalid image name {image_name!r}")
    rows = [
        " ".join(_format_number(v, box_decimals) for v in row[:4]) + " " + f"{row[4]:.9g}" for row in arr
    ]
    text = f"{stem}\n{len(rows)}\n" + "".join(r + "\n" for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_predictions(pred_dir: str | Path, predictions: Mapping[str, np.ndarray], gt: "WiderGroundTruth") -> None:
    """Write ``{image name: (N, 5) x y w h score}`` as a folder in the official layout."""
    event_of = dict(zip(gt.images, gt.events))
    for name, arr in predictions.items():
        arr = np.asarray(arr, dtype=np.float64).reshape(-1, 5)
        write_prediction_file(Path(pred_dir) / event_of[name] / f"{name}.txt", name, arr[:, :4], arr[:, 4])
