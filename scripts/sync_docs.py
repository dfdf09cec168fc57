"""Put the tables that scripts write into the pages that quote them, so no figure is copied by hand.

A page quotes a generated file between two marker lines:

    <!-- generated: weights/results/crowd_default.md (python scripts/eval_crowd.py ... --markdown ...) -->
    ...the file's text, exactly...
    <!-- end generated: weights/results/crowd_default.md -->

The first line names the file (relative to the repository root) and, in brackets, the command
that writes it; everything between the two lines is that file's text.  The tables themselves
come from the scripts' ``--markdown`` options (``eval_crowd.py``, ``eval_fddb_holdout.py``,
``bench_backends.py``, ``summary_table.py``).

    python scripts/sync_docs.py            # rewrite every quoted block from its file
    python scripts/sync_docs.py --check    # exit 1, naming each block that differs (a test runs this)

Pages searched: README.md, docs/*.md, weights/README.md.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/*.md", "weights/README.md")
BEGIN = re.compile(r"^<!-- generated: (?P<path>\S+) \((?P<command>[^\n]*)\) -->\n", re.M)


@dataclass(frozen=True)
class Block:
    page: Path
    source: str  # the generated file, relative to the root
    command: str
    start: int  # offsets of the quoted text inside the page
    end: int


def end_marker(source: str) -> str:
    return f"<!-- end generated: {source} -->"


def find_blocks(page: Path, text: str) -> list[Block]:
    """The quoted blocks of ``page``; ``ValueError`` for a begin marker without its end."""
    blocks = []
    for m in BEGIN.finditer(text):
        source = m["path"]
        end = text.find("\n" + end_marker(source), m.end() - 1)
        if end < 0:
            raise ValueError(f"{page}: the block quoting {source} has no '{end_marker(source)}' line")
        blocks.append(Block(page, source, m["command"], m.end(), end + 1))
    return blocks


def generated_text(root: Path, block: Block) -> str:
    path = root / block.source
    if not path.is_file():
        raise FileNotFoundError(f"{block.page}: quotes {block.source}, which does not exist "
                                f"(make it with: {block.command})")
    text = path.read_text(encoding="utf-8")
    return text if text.endswith("\n") else text + "\n"


def pages(root: Path) -> list[Path]:
    found: list[Path] = []
    for pattern in PAGES:
        found += sorted(root.glob(pattern))
    return found


def sync(root: Path = ROOT, check: bool = False) -> list[str]:
    """Rewrite (or with ``check`` only compare) every quoted block; one message per stale block."""
    stale = []
    for page in pages(root):
        text = page.read_text(encoding="utf-8")
        blocks = find_blocks(page, text)
        if not blocks:
            continue
        pieces, last = [], 0
        for b in blocks:
            want = generated_text(root, b)
            if text[b.start:b.end] != want:
                where = page.relative_to(root)
                stale.append(f"{where}: the block quoting {b.source} differs from the file (regenerate with: "
                             f"{b.command}; then python scripts/sync_docs.py)" if check
                             else f"{where}: rewrote the block quoting {b.source}")
            pieces += [text[last:b.start], want]
            last = b.end
        pieces.append(text[last:])
        new = "".join(pieces)
        if not check and new != text:
            page.write_text(new, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a quoted block is stale")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        stale = sync(args.root, check=args.check)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in stale:
        print(line, file=sys.stderr)
    if args.check:
        return 1 if stale else 0
    print(f"{len(stale)} block(s) rewritten" if stale else "every quoted block is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
