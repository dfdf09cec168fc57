"""``tee_stdout(path)``: what a measuring script prints, also kept as the Markdown file the docs quote.

    with tee_stdout(args.markdown):   # None: print only
        print(table)

The file gets the printed text without its leading and trailing blank lines (and without
``lstrip``'s characters at its start), ending in one newline; ``scripts/sync_docs.py`` puts it
into the pages that quote it.
"""
from __future__ import annotations

import contextlib
import os
import platform
import sys
from pathlib import Path
from typing import Iterator


class _Tee:
    def __init__(self, stream):
        self.stream, self.parts = stream, []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def cpu_description() -> str:
    """``Intel(R) Xeon(R) Processor, 2 cores available``: the machine line of a measurement."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores available"


@contextlib.contextmanager
def tee_stdout(path: str | Path | None, lstrip: str = "") -> Iterator[None]:
    if path is None:
        yield
        return
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield
    text = "".join(tee.parts).strip("\n").lstrip(lstrip).strip() + "\n"
    Path(path).write_text(text, encoding="utf-8")
