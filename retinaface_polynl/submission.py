"""WIDER FACE submission: run a detector over an image tree, write the official layout.

    WIDER_val/images/<event>/<image>.jpg  ->  OUT/<event>/<image>.txt
        <image>            (name without extension)
        <number of boxes>
        x y w h score      (one line per face, pixels)

Every image gets its file, even with no face.  Files are written atomically
(temporary file, then rename) and an existing file is skipped, so an interrupted
run resumes where it stopped and finishes with the same files.  Under
``torchrun`` each rank takes every ``world``-th image of the sorted list, so any
number of processes writes exactly the files one process would.
"""
from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .fileio import atomic_path
from .media import IMAGE_EXTENSIONS, ImageReadError, read_image

log = logging.getLogger(__name__)


def list_images(images_root: str | Path) -> list[Path]:
    """All images below ``images_root`` (relative paths ``event/name.jpg``), sorted."""
    root = Path(images_root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    images = sorted(p.relative_to(root) for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise FileNotFoundError(f"{root}: no images found below this folder")
    return images


def prediction_path(out_dir: str | Path, relative_image: Path) -> Path:
    return Path(out_dir) / relative_image.with_suffix(".txt")


def shard(items: list, rank: int, world_size: int) -> list:
    """The items rank ``rank`` of ``world_size`` processes takes (every ``world_size``-th)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of {world_size}")
    return items[rank::world_size]


@dataclass
class SubmissionReport:
    written: int = 0
    skipped: int = 0
    faces: int = 0
    failed: list[str] = field(default_factory=list)


def write_submission(
    detector,
    images_root: str | Path,
    out_dir: str | Path,
    tta=None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> SubmissionReport:
    """Detect faces in this rank's share of the images and write one file per image.

    Images whose file already exists are skipped (resume).  An unreadable image
    is reported (logged, listed in the report) and the run goes on; no file is
    written for it, so a later run retries it.
    """
    from widerface_eval import write_prediction_file

    root = Path(images_root)
    mine = shard(list_images(root), rank, world_size)
    report = SubmissionReport()
    bar = tqdm(mine, desc=f"submit[{rank}/{world_size}]", unit="img", disable=not progress, position=rank)
    for rel in bar:
        target = prediction_path(out_dir, rel)
        if target.exists():
            report.skipped += 1
            continue
        try:
            image = read_image(root / rel)
        except ImageReadError as exc:
            log.error("%s", exc)
            report.failed.append(str(root / rel))
            continue
        det = detector.detect(image, tta=tta)
        write_prediction_file(target, rel.name, det.to_xywh(), det.scores)
        report.written += 1
        report.faces += len(det)
    return report


def zip_submission(out_dir: str | Path, zip_path: str | Path) -> Path:
    """Zip the prediction folder (``event/image.txt`` entries) for upload."""
    out_dir, zip_path = Path(out_dir), Path(zip_path)
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(out_dir.rglob("*.txt")):
            zf.write(path, path.relative_to(out_dir).as_posix())
    return zip_path
