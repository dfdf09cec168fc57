"""The README's accuracy / speed table, composed from the JSON the measuring scripts write.

Each row takes its numbers from three measurements, by the name the detector has there:

* ``--crowd``: ``scripts/eval_crowd.py --json`` (crowd AP50 on faces_mask val.txt, WIDER dev);
* ``--fddb``: ``scripts/eval_fddb_holdout.py --json`` (FDDB fold 8 AP50 with face boxes);
* ``--bench``: ``scripts/bench_backends.py --json`` (ms per VGA photo, sequential, and x YuNet).

    python scripts/summary_table.py \\
        --crowd weights/results/release_crowd.json --fddb weights/results/release_fddb.json \\
        --bench weights/results/bench_backends.json \\
        --row "ours|ours|ours|ours: Detector() as installed" --row "YuNet|yunet|yunet|YuNet" \\
        --markdown weights/results/summary.md

``--row "LABEL|CROWD NAME|FDDB NAME|BENCH NAME"``: a name left empty, or absent from its file,
prints "–".  Several ``--crowd`` / ``--fddb`` files may be given (e.g. one per input size); a
name is looked up in each in turn, and ``NAME@SIZE`` picks the file measured at that ``--size``
(``crowd@640``, ``crowd@original``).  ``--layout sizes`` gives the input-size table of
docs/benchmarks.md.  The table is what README.md quotes (scripts/sync_docs.py).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

DASH = "–"


def load_crowd(paths: list[Path]) -> dict[str, dict]:
    """name -> row, and name@size -> row (the ``size`` the file was measured at)."""
    out: dict[str, dict] = {}
    for p in paths:
        data = json.loads(p.read_text())
        for name, row in data["results"].items():
            out.setdefault(name, row)
            out.setdefault(f"{name}@{data.get('size')}", row)
    return out


def load_rows(paths: list[Path], key: str) -> dict[str, dict]:
    """row[key] -> row, and row[key]@size -> row where the file records a size."""
    out: dict[str, dict] = {}
    for p in paths:
        data = json.loads(p.read_text())
        for row in data["rows"]:
            out.setdefault(row[key], row)
            if "size" in data:
                out.setdefault(f"{row[key]}@{data['size']}", row)
    return out


def parse_row(text: str) -> tuple[str, str, str, str]:
    parts = text.split("|")
    if len(parts) != 4 or not parts[0].strip():
        raise argparse.ArgumentTypeError(f"--row takes LABEL|CROWD|FDDB|BENCH, got {text!r}")
    return tuple(p.strip() for p in parts)  # type: ignore[return-value]


def compose_fddb_sizes(rows, fddb: dict) -> str:
    """FDDB fold 8 AP50 (face boxes) / TPR at 100 false positives of each row's FDDB name at
    original size, 480 and 640 px (the ``--size`` each eval_fddb_holdout.py file was made at)."""
    lines = ["| detector | original size | 480 px short side | 640 px short side |", "|---|---:|---:|---:|"]
    for label, _, f_name, _ in rows:
        cells = []
        for size in ("original", 480, 640):
            f = fddb.get(f"{f_name}@{size}")
            cells.append(f"{f['fddb_ap50_face_boxes']:.3f} / {f['fddb_tpr_at_100fp']:.3f}" if f else DASH)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ratio_to(row: dict, ref: dict) -> float:
    """Sequential time over ``ref``'s: the median of the per-pass ratios where bench_backends
    measured several passes (as its own table gives it), else the ratio of the medians."""
    a, b = row.get("seq_passes") or [], ref.get("seq_passes") or []
    if a and len(a) == len(b):
        return statistics.median(x / y for x, y in zip(a, b))
    return row["seq_ms"] / ref["seq_ms"]


def compose(rows, crowd: dict, fddb: dict, bench: dict, layout: str = "summary") -> str:
    """The table; ``layout="sizes"`` adds FDDB's TPR at 100 false positives, its recall of faces
    under 40 px, the crowd recall by size and the network input (for the input-size table)."""
    if layout == "fddb-sizes":
        return compose_fddb_sizes(rows, fddb)
    yunet = bench.get("YuNet")
    head = ["detector", "FDDB fold 8 AP50", "crowd AP50", "WIDER dev Easy / Medium / Hard", "ms per VGA photo (× YuNet)"]
    align = ["---", "---:", "---:", "---", "---:"]
    if layout == "sizes":
        head[0] = "input size (short side)"
        head[1:1] = ["VGA photo enters as"]
        align[1:1] = ["---"]
        head[3:3] = ["TPR @ 100 FP", "FDDB recall < 40 px"]
        align[3:3] = ["---:", "---:"]
        head[6:6] = ["crowd recall <16 / 16-32 / 32-64 / >64"]
        align[6:6] = ["---"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for label, c_name, f_name, b_name in rows:
        c, f, b = crowd.get(c_name), fddb.get(f_name), bench.get(b_name)
        fddb_ap = f"{f['fddb_ap50_face_boxes']:.3f}" if f else DASH
        crowd_ap = f"{100 * c['mask_ap50_drawn']:.1f}" if c else DASH
        wider = (" / ".join(f"{100 * c['wider_dev'][s]:.1f}" for s in ("easy", "medium", "hard"))
                 if c and "wider_dev" in c else DASH)
        if b:
            ms = f"{b['seq_ms']:.1f}"
            if yunet:
                ms += f" ({ratio_to(b, yunet):.2f}×)"
        else:
            ms = DASH
        cells = [label, fddb_ap, crowd_ap, wider, ms]
        if layout == "sizes":
            cells[1:1] = [b["network_input"].replace("x", "×") if b else DASH]
            cells[3:3] = [f"{f['fddb_tpr_at_100fp']:.3f}" if f and "fddb_tpr_at_100fp" in f else DASH,
                          f"{f['recall_w0-40']:.3f}" if f and "recall_w0-40" in f else DASH]
            cells[6:6] = [" / ".join(f"{v:.2f}" for v in c["mask_recall"].values()) if c and "mask_recall" in c
                          else DASH]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crowd", type=Path, action="append", default=[], help="eval_crowd.py --json output")
    p.add_argument("--fddb", type=Path, action="append", default=[], help="eval_fddb_holdout.py --json output")
    p.add_argument("--bench", type=Path, help="bench_backends.py --json output")
    p.add_argument("--row", type=parse_row, action="append", required=True, metavar="LABEL|CROWD|FDDB|BENCH")
    p.add_argument("--layout", choices=("summary", "sizes", "fddb-sizes"), default="summary",
                   help="summary: the README's columns; sizes: also FDDB's TPR and small-face recall, the crowd "
                   "recall by size and the network input (one model at several input sizes); fddb-sizes: FDDB "
                   "AP50 / TPR of each row at original size, 480 and 640 px")
    p.add_argument("--markdown", type=Path, help="write the table here (default: print it)")
    args = p.parse_args(argv)
    try:
        crowd = load_crowd(args.crowd)
        fddb = load_rows(args.fddb, "detector")
        bench = load_rows([args.bench], "name") if args.bench else {}
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = compose(args.row, crowd, fddb, bench, args.layout)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
