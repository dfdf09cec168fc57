"""Keep a multi-session training run in the repository, so that it survives a machine reset.

Each session of this project may start on a fresh machine, and ``runs/`` (git-ignored) does not
come with it: a recipe that takes longer than one session (``scripts/train_default_weights.sh``,
``scripts/train_crowd.sh``) is continued only from what was committed.  ``save`` copies into a
folder that can be committed what the recipe needs to go on, and nothing more:

- every phase's ``done`` marker, ``config.json`` and ``log.jsonl`` (the record of the run);
- the phase in progress: its ``last.pth`` whole (model, optimiser, scheduler and random state),
  so ``--resume auto`` continues it exactly;
- of the finished phases, only the newest one's ``last.pth``, without its optimiser state (the
  next phase starts from its weights with ``--weights``; a fresh optimiser is what the recipe
  gives it anyway);
- the run's labels folder and top-level logs.

``restore`` copies it back; then start the recipe script again with the same folder.

    python scripts/stash_run.py save runs/baseline_fddb checkpoints/baseline_fddb
    python scripts/stash_run.py restore checkpoints/baseline_fddb runs/baseline_fddb
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from retinaface_polynl.checkpoints import read_checkpoint
from retinaface_polynl.fileio import atomic_path

RECORD = ("done", "config.json", "log.jsonl")


def phases(run: Path) -> list[Path]:
    """The run's phase folders: those holding a training config or checkpoint."""
    return sorted(p for p in run.iterdir() if p.is_dir() and ((p / "config.json").is_file() or (p / "last.pth").is_file()))


def slim(src: Path, dst: Path) -> None:
    """``src`` without its optimiser state: what a later phase's ``--weights`` reads."""
    obj = read_checkpoint(src)
    obj.pop("optimizer", None)
    with atomic_path(dst) as tmp:
        torch.save(obj, tmp)


def save(run: Path, stash: Path) -> list[str]:
    if not run.is_dir():
        raise SystemExit(f"{run}: no such run folder")
    stash.mkdir(parents=True, exist_ok=True)
    written = []
    folders = phases(run)
    finished = [p for p in folders if (p / "done").is_file()]
    newest_finished = max(finished, key=lambda p: (p / "done").stat().st_mtime_ns, default=None)
    for phase in folders:
        out = stash / phase.name
        out.mkdir(exist_ok=True)
        for name in RECORD:
            if (phase / name).is_file():
                shutil.copy2(phase / name, out / name)
        last, kept = phase / "last.pth", out / "last.pth"
        if not last.is_file():
            continue
        if phase not in finished:
            shutil.copy2(last, kept)
            written.append(f"{kept} (in progress, whole)")
        elif phase == newest_finished:
            slim(last, kept)
            written.append(f"{kept} (finished, weights only)")
        else:
            kept.unlink(missing_ok=True)  # an older phase's weights: no later phase needs them
    for item in run.iterdir():
        if item.is_file() and item.suffix in (".log", ".out", ".json", ".txt"):
            shutil.copy2(item, stash / item.name)
        elif item.is_dir() and item.name == "labels":
            shutil.copytree(item, stash / "labels", dirs_exist_ok=True)
    return written


def restore(stash: Path, run: Path) -> list[str]:
    if not stash.is_dir():
        raise SystemExit(f"{stash}: nothing stashed there")
    run.mkdir(parents=True, exist_ok=True)
    shutil.copytree(stash, run, dirs_exist_ok=True)
    return [str(p) for p in sorted(run.glob("*/last.pth"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("save", help="copy what a run needs to continue into STASH")
    s.add_argument("run", type=Path)
    s.add_argument("stash", type=Path)
    r = sub.add_parser("restore", help="copy STASH back into RUN")
    r.add_argument("stash", type=Path)
    r.add_argument("run", type=Path)
    args = parser.parse_args(argv)
    lines = save(args.run, args.stash) if args.verb == "save" else restore(args.stash, args.run)
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
