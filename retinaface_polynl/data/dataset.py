"""The training dataset, its batches, and a resumable distributed sampler.

Each item is augmented with a ``numpy.random.Generator`` seeded from
``(seed, epoch, index)``: the same image gets the same augmentation in the same
epoch whatever the worker, the number of workers or the process, which is what
makes a resumed run reproduce an uninterrupted one exactly.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..detector import preprocess
from ..media import ImageReadError, read_image
from .augment import FaceSample
from .records import ImageRecord

log = logging.getLogger(__name__)

Transform = Callable[[FaceSample, np.random.Generator], FaceSample]


def sample_from_record(record: ImageRecord) -> FaceSample:
    """Read the record's image (BGR uint8) into a :class:`FaceSample`."""
    return FaceSample(read_image(record.path), record.boxes.copy(), record.landmarks.copy(), record.has_landmarks.copy())


def sample_to_tensors(sample: FaceSample) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A transformed sample -> (network input (3, H, W) float, BGR minus mean; target dict)."""
    image = torch.from_numpy(preprocess(sample.image))
    target = {
        "boxes": torch.from_numpy(np.ascontiguousarray(sample.boxes, np.float32)).reshape(-1, 4),
        "landmarks": torch.from_numpy(np.ascontiguousarray(sample.landmarks, np.float32)).reshape(-1, 5, 2),
        "has_landmarks": torch.from_numpy(np.ascontiguousarray(sample.has_landmarks, bool)).reshape(-1),
    }
    return image, target


class FaceDataset(Dataset):
    """Records -> (image tensor, target dict) with a reproducible per-item augmentation.

    An image that cannot be read (corrupt, truncated, deleted since the start) is
    skipped with a warning naming it, once per process: its item is the next
    readable record's, so one bad file among thousands does not end a long run.

    Args:
        records: the annotated images.
        transform: ``(sample, rng) -> sample``, e.g. :class:`~.augment.TrainAugment`.
        seed: base seed of the augmentation.
    """

    def __init__(self, records: Sequence[ImageRecord], transform: Transform, seed: int = 0) -> None:
        self.records = list(records)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.unreadable: set[int] = set()  # indices found unreadable (by this process)

    def set_epoch(self, epoch: int) -> None:
        """Call before building each epoch's iterator (workers copy the dataset then)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __getitem__(self, index: int):
        n = len(self.records)
        for k in range(n):
            i = (index + k) % n
            if i in self.unreadable:
                continue
            try:
                sample = sample_from_record(self.records[i])
            except ImageReadError as exc:
                self.unreadable.add(i)
                log.warning("%s; skipped (training goes on without it)", exc)
                continue
            return sample_to_tensors(self.transform(sample, self.rng(index)))
        raise ImageReadError(f"none of the {n} training images can be read")


def collate_faces(batch) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Items of equal image size -> ``(images (B, 3, H, W), [target, ...])``."""
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled by ``seed + epoch``, split across ranks) that
    can start an epoch after its first ``skip`` items, to resume mid-epoch."""

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def _init_worker(_worker_id: int) -> None:
    """One OpenCV thread per worker process: the workers are the parallelism."""
    import cv2

    cv2.setNumThreads(0)
    torch.set_num_threads(1)


def build_loader(
    dataset: FaceDataset,
    batch_size: int,
    workers: int = 4,
    num_replicas: int = 1,
    rank: int = 0,
    seed: int = 0,
    pin_memory: bool = False,
) -> tuple[DataLoader, ResumableDistributedSampler]:
    """A shuffling loader over this rank's share (incomplete last batches dropped)."""
    sampler = ResumableDistributedSampler(dataset, num_replicas=num_replicas, rank=rank, seed=seed, drop_last=False)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_faces,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=False,
        worker_init_fn=_init_worker if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
    )
    return loader, sampler
