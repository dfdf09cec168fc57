"""WIDER FACE validation ground truth: the official ``.mat`` files or the text layout.

Official files (``gt_dir`` as shipped with the MATLAB toolkit's ``ground_truth/``)::

    wider_face_val.mat      event_list, file_list, face_bbx_list (x y w h), attribute lists
    wider_easy_val.mat      the same plus gt_list: 1-based indices of the faces that count
    wider_medium_val.mat
    wider_hard_val.mat

The toolkit evaluates each setting with the ``face_bbx_list`` / ``file_list``
of that setting's file; we check that they equal those of
``wider_face_val.mat`` and raise :class:`GroundTruthError` otherwise.

Text layout (``wider_face_val_bbx_gt.txt``)::

    0--Parade/0_Parade_marchingband_1_465.jpg
    126
    x y w h blur expression illumination invalid occlusion pose
    ...

It carries no Easy/Medium/Hard split: **the official split needs the .mat
files** (it comes from EdgeBox detection rates, not from the attributes).
When only the text file is at hand the settings are approximated from the box
attributes as ``invalid == 0 and h >= 50 / 30 / 10`` pixels for easy / medium
/ hard.  Measured against the official lists these rules agree with them to
a Jaccard index of 0.98 / 0.98 / 0.97, so numbers are close to, but **not
comparable with**, published results; :attr:`WiderGroundTruth.official` is
``False`` and an :class:`ApproximateSettingsWarning` is emitted.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ApproximateSettingsWarning, GroundTruthError

__all__ = ["SETTINGS", "WiderGroundTruth", "load_ground_truth", "load_mat_ground_truth", "load_text_ground_truth"]

SETTINGS: tuple[str, ...] = ("easy", "medium", "hard")
MAT_FILES = {"all": "wider_face_val.mat", **{s: f"wider_{s}_val.mat" for s in SETTINGS}}
TEXT_FILE = "wider_face_val_bbx_gt.txt"
ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
#: minimum face height (pixels) of the attribute-based approximations used with the text layout
APPROX_MIN_HEIGHT = {"easy": 50, "medium": 30, "hard": 10}


@dataclass
class WiderGroundTruth:
    """Ground truth of one split, image by image (all lists are parallel).

    ``boxes[i]`` is ``(n_i, 4)`` float64 ``x y w h``; ``keep[setting][i]`` the
    0-based indices of the faces of image ``i`` that count in ``setting``
    (the toolkit's ``gt_list``).  Faces not in ``keep`` are the toolkit's
    "ignore" faces: a prediction matched to one is removed from the count.

    ``box_class`` is the MATLAB class the toolkit would hold the boxes in:
    ``"int32"`` (the official ``.mat`` files, and the text layout, whose
    boxes are the same integers) or ``"double"``.  It decides the arithmetic
    of the ``"matlab"`` protocol (the int32 rule, see
    :mod:`widerface_eval.protocol`).  ``None`` (the default) means ``"int32"``
    when every coordinate is a whole number within the int32 range, else
    ``"double"``.
    """

    events: list[str]
    images: list[str]
    boxes: list[np.ndarray]
    keep: dict[str, list[np.ndarray]]
    official: bool = True
    source: str = ""
    attributes: dict[str, list[np.ndarray]] = field(default_factory=dict)
    box_class: str | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if len(self.events) != n or len(self.boxes) != n:
            raise ValueError("events, images and boxes must have the same length")
        self.boxes = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in self.boxes]
        if self.box_class is None:
            whole = all(
                np.array_equal(b, np.round(b)) and (np.abs(b) < 2**31).all() for b in self.boxes
            )
            self.box_class = "int32" if whole else "double"
        if self.box_class not in ("int32", "double"):
            raise ValueError(f"box_class must be 'int32' or 'double', got {self.box_class!r}")
        for s, lists in self.keep.items():
            if len(lists) != n:
                raise ValueError(f"keep[{s!r}] has {len(lists)} entries for {n} images")
            self.keep[s] = [np.asarray(k, dtype=np.int64).reshape(-1) for k in lists]
            for i, k in enumerate(self.keep[s]):
                if k.size and (k.min() < 0 or k.max() >= len(self.boxes[i])):
                    raise ValueError(f"keep[{s!r}] of image {self.images[i]!r} indexes a face that does not exist")

    @property
    def settings(self) -> tuple[str, ...]:
        return tuple(self.keep)

    def num_faces(self, setting: str | None = None) -> int:
        """Number of faces (all, or those that count in ``setting``)."""
        if setting is None:
            return int(sum(len(b) for b in self.boxes))
        return int(sum(len(k) for k in self.keep[setting]))

    @classmethod
    def from_boxes(
        cls,
        boxes: dict[str, np.ndarray],
        keep: dict[str, dict[str, np.ndarray]] | None = None,
        event: str = "0--Event",
        box_class: str | None = None,
    ) -> "WiderGroundTruth":
        """Small in-memory ground truth: ``{image: (n, 4) xywh}``; ``keep[setting][image]`` 0-based.

        Without ``keep`` every face counts in every setting.  ``box_class``:
        see the class docstring (default: ``"int32"`` for whole-number boxes,
        as in the official files).
        """
        names = list(boxes)
        if keep is None:
            keep = {s: {n: np.arange(len(np.reshape(boxes[n], (-1, 4)))) for n in names} for s in SETTINGS}
        return cls(
            events=[event] * len(names),
            images=names,
            boxes=[boxes[n] for n in names],
            keep={s: [np.asarray(k.get(n, []), dtype=np.int64) for n in names] for s, k in keep.items()},
            official=False,
            source="<memory>",
            box_class=box_class,
        )


def _cells(mat: dict, key: str, path: Path) -> np.ndarray:
    if key not in mat:
        raise GroundTruthError(path, f"variable {key!r} missing (not a WIDER FACE ground-truth file?)")
    return np.asarray(mat[key]).reshape(-1)


def _str(cell) -> str:
    return str(np.asarray(cell).reshape(-1)[0])


def _read_mat(path: Path) -> dict:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ModuleNotFoundError(
            f"{path}: reading the official .mat ground truth needs SciPy: pip install 'retinaface-polynl[eval]' "
            "(or pass the text ground truth, wider_face_val_bbx_gt.txt)"
        ) from None

    try:
        return loadmat(str(path))
    except Exception as exc:  # scipy raises several types for corrupt files
        raise GroundTruthError(path, f"cannot read MATLAB file ({exc})") from None


def load_mat_ground_truth(gt_dir: str | Path) -> WiderGroundTruth:
    """Load ``wider_face_val.mat`` and the three setting files from ``gt_dir``."""
    gt_dir = Path(gt_dir)
    missing = [f for f in MAT_FILES.values() if not (gt_dir / f).is_file()]
    if missing:
        raise GroundTruthError(gt_dir, f"ground-truth folder lacks {', '.join(missing)}")
    main_path = gt_dir / MAT_FILES["all"]
    main = _read_mat(main_path)
    ev_cells = _cells(main, "event_list", main_path)
    file_cells = _cells(main, "file_list", main_path)
    box_cells = _cells(main, "face_bbx_list", main_path)
    if not (len(ev_cells) == len(file_cells) == len(box_cells)):
        raise GroundTruthError(main_path, "event_list, file_list and face_bbx_list differ in length")
    events, images, boxes = [], [], []
    raw_boxes = []
    kinds = set()
    for e, (ev, files, bxs) in enumerate(zip(ev_cells, file_cells, box_cells)):
        files = np.asarray(files).reshape(-1)
        bxs = np.asarray(bxs).reshape(-1)
        if len(files) != len(bxs):
            raise GroundTruthError(main_path, f"event {e + 1}: {len(files)} images but {len(bxs)} box lists")
        for f, b in zip(files, bxs):
            events.append(_str(ev))
            images.append(_str(f))
            raw_boxes.append(np.asarray(b))
            kinds.add(np.asarray(b).dtype.kind)
            b = np.asarray(b, dtype=np.float64)
            if b.size % 4:
                raise GroundTruthError(main_path, f"image {_str(f)!r}: boxes are not x y w h rows")
            b = b.reshape(-1, 4)
            if not np.isfinite(b).all():
                raise GroundTruthError(main_path, f"image {_str(f)!r}: non-finite box coordinates")
            boxes.append(b)
    attributes: dict[str, list[np.ndarray]] = {}
    for a in ATTRIBUTES:
        key = f"{a}_label_list"
        if key in main:
            attributes[a] = [np.asarray(x).reshape(-1) for ev in _cells(main, key, main_path) for x in np.asarray(ev).reshape(-1)]

    keep: dict[str, list[np.ndarray]] = {}
    for s in SETTINGS:
        path = gt_dir / MAT_FILES[s]
        mat = _read_mat(path)
        gl_cells = _cells(mat, "gt_list", path)
        s_files = _cells(mat, "file_list", path)
        s_boxes = _cells(mat, "face_bbx_list", path)
        if len(gl_cells) != len(ev_cells) or len(s_files) != len(ev_cells) or len(s_boxes) != len(ev_cells):
            raise GroundTruthError(path, f"has a different number of events than {MAT_FILES['all']}")
        lists: list[np.ndarray] = []
        i = 0
        for e, (gl, files, bxs) in enumerate(zip(gl_cells, s_files, s_boxes)):
            gl = np.asarray(gl).reshape(-1)
            files = np.asarray(files).reshape(-1)
            bxs = np.asarray(bxs).reshape(-1)
            if not (len(gl) == len(files) == len(bxs)):
                raise GroundTruthError(path, f"event {e + 1}: gt_list, file_list and face_bbx_list differ in length")
            for g, f, b in zip(gl, files, bxs):
                if i >= len(images) or _str(f) != images[i] or not np.array_equal(np.asarray(b), raw_boxes[i]):
                    raise GroundTruthError(path, f"image {_str(f)!r} (event {e + 1}) differs from {MAT_FILES['all']}")
                idx = np.asarray(g).astype(np.int64).reshape(-1) - 1  # uint8/uint16 in the files: cast first
                if idx.size and (idx.min() < 0 or idx.max() >= len(boxes[i])):
                    raise GroundTruthError(path, f"gt_list of image {images[i]!r} indexes a face that does not exist")
                lists.append(idx)
                i += 1
        if i != len(images):
            raise GroundTruthError(path, f"lists {i} images, {MAT_FILES['all']} lists {len(images)}")
        keep[s] = lists
    # the official files hold int32 boxes; a file storing doubles is evaluated in double, as MATLAB would
    box_class = "int32" if kinds <= {"i", "u"} else "double"
    return WiderGroundTruth(
        events, images, boxes, keep, official=True, source=str(gt_dir), attributes=attributes, box_class=box_class
    )


def load_text_ground_truth(path: str | Path, warn: bool = True) -> WiderGroundTruth:
    """Load ``wider_face_val_bbx_gt.txt`` with attribute-based (approximate) settings."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise GroundTruthError(path, "file not found") from None
    events, images, boxes = [], [], []
    attrs: dict[str, list[np.ndarray]] = {a: [] for a in ATTRIBUTES}
    i = 0
    n_lines = len(lines)
    while i < n_lines:
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        if "/" not in name:
            raise GroundTruthError(path, f"expected an image path '<event>/<image>.jpg', got {name!r}", line=i + 1)
        if i + 1 >= n_lines or not lines[i + 1].strip().isdigit():
            raise GroundTruthError(path, f"expected the number of faces of {name!r}", line=i + 2)
        n = int(lines[i + 1])
        rows_text = lines[i + 2 : i + 2 + max(n, 1)]
        if len(rows_text) < max(n, 1):
            raise GroundTruthError(path, f"{name!r} announces {n} faces but the file ends", line=n_lines)
        try:
            rows = np.array([r.split() for r in rows_text], dtype=np.float64)
        except ValueError:
            raise GroundTruthError(path, f"malformed face line(s) for {name!r}", line=i + 3) from None
        if rows.ndim != 2 or rows.shape[1] < 4:
            raise GroundTruthError(path, f"face lines of {name!r} need x y w h and attributes", line=i + 3)
        rows = rows[:n]  # n == 0: the file carries one placeholder line of zeros
        event, _, fname = name.replace("\\", "/").rpartition("/")
        events.append(event.rsplit("/", 1)[-1])
        images.append(fname.rsplit(".", 1)[0])
        boxes.append(rows[:, :4])
        for j, a in enumerate(ATTRIBUTES):
            attrs[a].append(rows[:, 4 + j].astype(np.int64) if rows.shape[1] > 4 + j else np.zeros(len(rows), np.int64))
        i += 2 + max(n, 1)
    keep = {
        s: [np.flatnonzero((inv == 0) & (b[:, 3] >= APPROX_MIN_HEIGHT[s])) for b, inv in zip(boxes, attrs["invalid"])]
        for s in SETTINGS
    }
    if warn:
        warnings.warn(
            f"{path}: ground truth in the text layout has no official Easy/Medium/Hard split (that needs "
            "wider_face_val.mat and wider_{easy,medium,hard}_val.mat); settings are approximated as "
            "invalid==0 and face height >= 50/30/10 px, so the APs are not comparable with published numbers",
            ApproximateSettingsWarning,
            stacklevel=3,
        )
    return WiderGroundTruth(events, images, boxes, keep, official=False, source=str(path), attributes=attrs)


def load_ground_truth(gt_dir: str | Path) -> WiderGroundTruth:
    """Load WIDER FACE ground truth from a folder (or a file in it).

    Prefers the official ``.mat`` files; falls back to
    ``wider_face_val_bbx_gt.txt`` (approximate settings, see module docs)
    only when *no* ``.mat`` file is present.  A folder with some but not all
    of the four ``.mat`` files raises :class:`GroundTruthError` naming the
    missing ones.
    """
    p = Path(gt_dir)
    if p.is_file():
        if p.suffix == ".txt":
            return load_text_ground_truth(p)
        p = p.parent
    if not p.is_dir():
        raise GroundTruthError(p, "ground-truth folder does not exist")
    present = [f for f in MAT_FILES.values() if (p / f).is_file()]
    if present:
        return load_mat_ground_truth(p)
    if (p / TEXT_FILE).is_file():
        return load_text_ground_truth(p / TEXT_FILE)
    raise GroundTruthError(
        p, f"no ground truth found: expected {', '.join(MAT_FILES.values())} (official) or {TEXT_FILE}"
    )
