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
name is looked up in each in turn.  The table is what README.md quotes (scripts/sync_docs.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DASH = "–"


def load_crowd(paths: list[Path]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for p in paths:
        for name, row in json.loads(p.read_text())["results"].items():
            out.setdefault(name, row)
    return out


def load_rows(paths: list[Path], key: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for p in paths:
        for row in json.loads(p.read_text())["rows"]:
            out.setdefault(row[key], row)
    return out


def parse_row(text: str) -> tuple[str, str, str, str]:
    parts = text.split("|")
    if len(parts) != 4 or not parts[0].strip():
        raise argparse.ArgumentTypeError(f"--row takes LABEL|CROWD|FDDB|BENCH, got {text!r}")
    return tuple(p.strip() for p in parts)  # type: ignore[return-value]


def compose(rows, crowd: dict, fddb: dict, bench: dict) -> str:
    yunet = next((r for name, r in bench.items() if name == "YuNet"), None)
    lines = ["| detector | FDDB fold 8 AP50 | crowd AP50 | WIDER dev Easy / Medium / Hard | ms per VGA photo (× YuNet) |",
             "|---|---:|---:|---|---:|"]
    for label, c_name, f_name, b_name in rows:
        c, f, b = crowd.get(c_name), fddb.get(f_name), bench.get(b_name)
        fddb_ap = f"{f['fddb_ap50_face_boxes']:.3f}" if f else DASH
        crowd_ap = f"{100 * c['mask_ap50_drawn']:.1f}" if c else DASH
        wider = (" / ".join(f"{100 * c['wider_dev'][s]:.1f}" for s in ("easy", "medium", "hard"))
                 if c and "wider_dev" in c else DASH)
        if b:
            ms = f"{b['seq_ms']:.1f}"
            if yunet:
                ms += f" ({b['seq_ms'] / yunet['seq_ms']:.2f}×)"
        else:
            ms = DASH
        lines.append(f"| {label} | {fddb_ap} | {crowd_ap} | {wider} | {ms} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crowd", type=Path, action="append", default=[], help="eval_crowd.py --json output")
    p.add_argument("--fddb", type=Path, action="append", default=[], help="eval_fddb_holdout.py --json output")
    p.add_argument("--bench", type=Path, help="bench_backends.py --json output")
    p.add_argument("--row", type=parse_row, action="append", required=True, metavar="LABEL|CROWD|FDDB|BENCH")
    p.add_argument("--markdown", type=Path, help="write the table here (default: print it)")
    args = p.parse_args(argv)
    try:
        crowd = load_crowd(args.crowd)
        fddb = load_rows(args.fddb, "detector")
        bench = load_rows([args.bench], "name") if args.bench else {}
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = compose(args.row, crowd, fddb, bench)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
