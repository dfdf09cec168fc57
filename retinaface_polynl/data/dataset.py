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

from ..pipeline import preprocess
from ..media import ImageReadError, read_image
from .augment import FaceSample
from .records import ImageRecord

log = logging.getLogger(__name__)

Transform = Callable[[FaceSample, np.random.Generator], FaceSample]


def sample_from_record(record: ImageRecord) -> FaceSample:
    """Read the record's image (BGR uint8) into a :class:`FaceSample`."""
    return FaceSample(read_image(record.path), record.boxes.copy(), record.landmarks.copy(), record.has_landmarks.copy(),
                      record.ignore.copy(), record.negatives.copy())


def sample_to_tensors(sample: FaceSample) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A transformed sample -> (network input (3, H, W) float, BGR minus mean; target dict)."""
    image = torch.from_numpy(preprocess(sample.image))
    target = {
        "boxes": torch.from_numpy(np.ascontiguousarray(sample.boxes, np.float32)).reshape(-1, 4),
        "landmarks": torch.from_numpy(np.ascontiguousarray(sample.landmarks, np.float32)).reshape(-1, 5, 2),
        "has_landmarks": torch.from_numpy(np.ascontiguousarray(sample.has_landmarks, bool)).reshape(-1),
        "ignore": torch.from_numpy(np.ascontiguousarray(sample.ignore, np.float32)).reshape(-1, 4),
        "negatives": torch.from_numpy(np.ascontiguousarray(sample.negatives, np.float32)).reshape(-1, 4),
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
        """The record at ``index`` modulo the length (a sampler's repeat), augmented by ``rng(index)``."""
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


class MixtureSampler(torch.utils.data.Sampler[int]):
    """Draws from several training sets in stated proportions, resumably and split across ranks.

    The dataset holds the sets one after another (``sizes`` records each).  Each epoch
    is ``epoch_size`` draws (default: all records): each draw picks set ``k`` with
    probability ``weights[k] / sum(weights)`` and then one of its images, without
    replacement within the epoch until the set is used up (then it starts over),
    all from a generator seeded by ``(seed, epoch)``.  An image drawn again within the
    epoch (a set used up) comes as its index plus ``round * sum(sizes)``: the dataset
    reads the same image (indices wrap) with another augmentation, where the bare index
    would give every repeat the identical crop (the augmentation is seeded by
    ``(seed, epoch, index)``).  Rank ``r`` of ``n`` takes draws
    ``r, r + n, ...``, and ``set_epoch(epoch, skip)`` starts after this rank's first
    ``skip`` draws, as :class:`ResumableDistributedSampler` does.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], epoch_size: int | None = None,
                 num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        if len(sizes) != len(weights):
            raise ValueError(f"{len(weights)} mixture weights for {len(sizes)} training sets")
        if any(s <= 0 for s in sizes):
            raise ValueError(f"every training set needs an image, got sizes {list(sizes)}")
        if any(w < 0 for w in weights) or not sum(weights) > 0:
            raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {list(weights)}")
        self.sizes = [int(s) for s in sizes]
        self.probs = np.asarray(weights, np.float64) / float(sum(weights))
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.epoch_size = int(epoch_size or sum(self.sizes))
        self.num_replicas, self.rank, self.seed = num_replicas, rank, seed
        self.num_samples = self.epoch_size // num_replicas
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = int(epoch), int(skip)

    def draws(self) -> np.ndarray:
        """This epoch's dataset indices for every rank (``epoch_size`` of them, rounded down
        to a multiple of the number of ranks)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        which = rng.choice(len(self.sizes), size=self.num_samples * self.num_replicas, p=self.probs)
        out = np.empty(len(which), np.int64)
        for k, size in enumerate(self.sizes):
            pos = np.flatnonzero(which == k)
            rounds = -(-len(pos) // size) if len(pos) else 0
            order = np.concatenate([rng.permutation(size) for _ in range(rounds)]) if rounds else np.zeros(0, np.int64)
            round_of = np.repeat(np.arange(rounds, dtype=np.int64), size)
            out[pos] = self.offsets[k] + order[: len(pos)] + round_of[: len(pos)] * sum(self.sizes)
        return out

    def __iter__(self) -> Iterator[int]:
        mine = self.draws()[self.rank :: self.num_replicas]
        return iter(mine[self.skip :].tolist())

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
    sampler: "MixtureSampler | None" = None,
) -> tuple[DataLoader, "ResumableDistributedSampler | MixtureSampler"]:
    """A shuffling loader over this rank's share (incomplete last batches dropped); ``sampler``
    (a :class:`MixtureSampler`) replaces the uniform shuffle."""
    if sampler is None:
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
