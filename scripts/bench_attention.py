#!/usr/bin/env python
"""Runtime and peak memory of the attention blocks as the number of positions grows.

Reproduces the kind of comparison in the Poly-NL supplementary's Figure 2 (CPU run
time against input size, one line per block): for every block and channel width,
the forward pass (batch 1, eval mode, no grad) is timed at ``side x side``
positions for each ``--sizes`` side (median of ``--repeats`` runs after a
warm-up) and its peak memory is measured.  Prints a Markdown table, the fitted
growth exponents of time and memory in N (≈1 linear, ≈2 quadratic) and the Non-local /
Poly-NL time ratio at the largest size, and draws a log-log PNG (``--out``).

Peak memory:

* CUDA: ``torch.cuda.max_memory_allocated()`` during the forward minus the memory
  allocated before it (block weights and input excluded).
* CPU: each (block, channels, size) case runs in a fresh process (forked before
  any torch op ran, so no memory freed by an earlier case can be silently
  reused); the kernel's peak
  resident-set counter (``VmHWM``) is reset just before the forward by writing
  ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0), and the peak is ``VmHWM``
  after the forward minus ``VmRSS`` before it: the resident memory the forward
  pass really touched on top of weights and input.  Where ``clear_refs`` cannot
  be written the ``ru_maxrss`` growth is used instead (a lower bound) and the
  table says so.

``--detector`` additionally times whole detectors at VGA (640x480) for each
backbone with and without Poly-NL (random weights), see :func:`bench_detector`.

Examples::

    python scripts/bench_attention.py                       # defaults below
    python scripts/bench_attention.py --channels 64 --sizes 16 32 64 --blocks polynl nonlocal
    python scripts/bench_attention.py --device cuda --out fig2_gpu.png
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from retinaface_polynl.models.attention import ATTENTION_BLOCKS, build_attention  # noqa: E402

DEFAULT_SIZES = (16, 32, 64, 96, 128)
DEFAULT_CHANNELS = (64, 256)
LABELS = {
    "polynl": "Poly-NL",
    "polynl2": "Poly-NL (2nd order)",
    "nonlocal": "Non-local",
    "gc": "GC",
    "se": "SE",
    "latentgnn": "LatentGNN",
    "efficientnl": "Efficient-NL",
}


# --------------------------------------------------------------------------- measuring one case


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _build(block: str, channels: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    module = build_attention(block, channels).to(device).eval()
    # Random non-zero weights in the zero-initialised last layers: the timed work is the same,
    # but the output is not trivially the input.
    with torch.no_grad():
        for p in module.parameters():
            if torch.count_nonzero(p) == 0:
                p.normal_(0.0, 0.01)
    return module


def measure_case(block: str, channels: int, side: int, repeats: int, device: str = "cpu") -> dict[str, Any]:
    """Time (median, seconds) and peak memory (bytes) of one forward pass, in this process.

    On CPU call it in a fresh process (``bench_blocks`` does) for an honest memory figure.
    """
    dev = torch.device(device)
    module = _build(block, channels, dev)
    x = torch.randn(1, channels, side, side, device=dev)
    result: dict[str, Any] = {"block": block, "channels": channels, "side": side, "positions": side * side}
    with torch.no_grad():
        # initialise lazily created runtime state (thread pools, kernel caches) on a tiny input
        # so that it is not counted as the block's memory
        module(torch.randn(1, channels, 2, 2, device=dev))
        _sync(dev)
        # first (warm-up) forward doubles as the memory measurement
        if dev.type == "cuda":
            _sync(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            before = torch.cuda.memory_allocated(dev)
            module(x)
            _sync(dev)
            result["peak_bytes"] = torch.cuda.max_memory_allocated(dev) - before
            result["memory_method"] = "cuda.max_memory_allocated"
        else:
            import resource

            rss_before = _proc_status_kib("VmRSS")
            if _reset_peak_rss() and rss_before is not None:
                module(x)
                hwm = _proc_status_kib("VmHWM")
                result["peak_bytes"] = max(0, (hwm or 0) - rss_before) * 1024
                result["memory_method"] = "VmHWM-VmRSS"
            else:
                maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                module(x)
                maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                result["peak_bytes"] = max(0, maxrss_after - maxrss_before) * 1024
                result["memory_method"] = "ru_maxrss growth (lower bound)"
        module(x)  # second warm-up run
        _sync(dev)
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            module(x)
            _sync(dev)
            times.append(time.perf_counter() - start)
    result["time_s"] = statistics.median(times)
    result["times_s"] = times
    return result


def _fork_worker(conn, block: str, channels: int, side: int, repeats: int, threads: int | None) -> None:
    try:
        if threads is not None and threads > 0:
            torch.set_num_threads(threads)
        conn.send(("ok", measure_case(block, channels, side, repeats, "cpu")))
    except BaseException as exc:  # report, never hang the parent
        conn.send(("error", repr(exc)))
    finally:
        conn.close()


def _measure_in_subprocess(block: str, channels: int, side: int, repeats: int, threads: int | None) -> dict[str, Any]:
    """Run :func:`measure_case` in a fresh process: forked from this one where possible (cheap:
    torch is already imported and this process has run no torch op), else a new interpreter."""
    import multiprocessing as mp

    if "fork" in mp.get_all_start_methods():
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_fork_worker, args=(child, block, channels, side, repeats, threads))
        proc.start()
        child.close()
        status, payload = parent.recv()
        proc.join()
        if status != "ok":
            raise RuntimeError(f"case {block} C={channels} {side}x{side} failed: {payload}")
        return payload
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_one-case", json.dumps([block, channels, side, repeats])]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"case {block} C={channels} {side}x{side} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_blocks(
    blocks: Sequence[str] = ATTENTION_BLOCKS,
    channels: Sequence[int] = DEFAULT_CHANNELS,
    sizes: Sequence[int] = DEFAULT_SIZES,
    repeats: int = 3,
    device: str = "cpu",
    isolate: bool | None = None,
    threads: int | None = None,
    log=print,
) -> list[dict[str, Any]]:
    """One row per (block, channels, side): ``time_s`` (median), ``peak_bytes``, ``positions``.

    ``isolate`` (default: on for CPU) runs every case in its own subprocess.
    """
    isolate = (torch.device(device).type == "cpu") if isolate is None else isolate
    rows = []
    for c in channels:
        for block in blocks:
            for side in sizes:
                if isolate:
                    row = _measure_in_subprocess(block, c, side, repeats, threads)
                else:
                    row = measure_case(block, c, side, repeats, device)
                row["device"] = device
                rows.append(row)
                if log:
                    log(
                        f"  {block:>12s} C={c:<4d} {side:>4d}x{side:<4d} "
                        f"{row['time_s'] * 1e3:10.2f} ms  {row['peak_bytes'] / 2**20:10.1f} MiB"
                    )
    return rows


# --------------------------------------------------------------------------- whole detector (hook)


def bench_detector(
    presets: Sequence[str] = ("mnet025", "mnet025_polynl", "r18x025", "r18x025_polynl", "r50", "r50_polynl"),
    size: tuple[int, int] = (480, 640),
    repeats: int = 3,
    device: str = "cpu",
    log=print,
) -> list[dict[str, Any]]:
    """Forward latency of whole RetinaFace detectors (random weights) at ``size`` (H, W).

    Each preset is built with :class:`retinaface_polynl.models.retinaface.RetinaFace`;
    rows: ``preset``, ``attention``, ``time_s`` (median of ``repeats`` after a warm-up).
    """
    from retinaface_polynl.models.retinaface import RetinaFace
    from retinaface_polynl.presets import get_preset

    dev = torch.device(device)
    rows = []
    for name in presets:
        config = get_preset(name)
        torch.manual_seed(0)
        model = RetinaFace(config).to(dev).eval()
        x = torch.randn(1, 3, *size, device=dev)
        with torch.no_grad():
            for _ in range(2):  # warm-up
                model(x)
            _sync(dev)
            times = []
            for _ in range(max(1, repeats)):
                start = time.perf_counter()
                model(x)
                _sync(dev)
                times.append(time.perf_counter() - start)
        row = {
            "preset": name,
            "backbone": config.backbone,
            "attention": config.attention or "none",
            "stage": config.attention_stage if config.attention else "",
            "time_s": statistics.median(times),
            "params": sum(p.numel() for p in model.parameters()),
        }
        rows.append(row)
        if log:
            log(f"  {name:>16s} {row['time_s'] * 1e3:9.1f} ms")
    return rows


def detector_table(rows: Sequence[dict[str, Any]], size: tuple[int, int]) -> str:
    lines = [
        f"| preset | backbone | attention | params | latency at {size[1]}x{size[0]} (ms) |",
        "|---|---|---|---:|---:|",
    ]
    for r in rows:
        att = r["attention"] + (f" ({r['stage']})" if r["stage"] else "")
        lines.append(f"| {r['preset']} | {r['backbone']} | {att} | {r['params'] / 1e6:.2f} M | {r['time_s'] * 1e3:.1f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- reporting


def growth_exponent(rows: Sequence[dict[str, Any]], block: str, channels: int, key: str = "time_s", last: int = 3) -> float:
    """Least-squares slope of log(key) against log(N) over the ``last`` largest sizes measured
    (where the asymptotic term dominates): ≈1 for linear cost, ≈2 for quadratic."""
    pts = sorted((r["positions"], r[key]) for r in rows if r["block"] == block and r["channels"] == channels)
    pts = [(math.log(n), math.log(v)) for n, v in pts if v > 0][-last:]
    if len(pts) < 2:
        return float("nan")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    return sum((px - mx) * (py - my) for px, py in pts) / sum((px - mx) ** 2 for px, _ in pts)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Time (ms) and peak memory (MiB) per block, one column per size, grouped by channels."""
    sides = sorted({r["side"] for r in rows})
    out = []
    for c in sorted({r["channels"] for r in rows}):
        sub = [r for r in rows if r["channels"] == c]
        blocks = list(dict.fromkeys(r["block"] for r in sub))
        by = {(r["block"], r["side"]): r for r in sub}
        head = " | ".join(f"{s}² ({s * s})" for s in sides)
        out.append(f"**C = {c}** (batch 1, device {sub[0]['device']}): forward time ms / peak memory MiB\n")
        out.append(f"| block | {head} | time ~ N^k: k | memory ~ N^k: k |")
        out.append("|---|" + "---:|" * len(sides) + "---:|---:|")
        for b in blocks:
            cells = []
            for s in sides:
                r = by.get((b, s))
                cells.append("" if r is None else f"{r['time_s'] * 1e3:.2f} / {r['peak_bytes'] / 2**20:.1f}")
            k_time, k_mem = growth_exponent(sub, b, c, "time_s"), growth_exponent(sub, b, c, "peak_bytes")
            out.append(f"| {LABELS.get(b, b)} | " + " | ".join(cells) + f" | {k_time:.2f} | {k_mem:.2f} |")
        out.append("")
    methods = sorted({r.get("memory_method", "?") for r in rows})
    out.append(f"Peak memory method: {', '.join(methods)}; k: least-squares log-log slope over the 3 largest sizes.")
    return "\n".join(out)


def ratio_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for c in sorted({r["channels"] for r in rows}):
        by = {r["block"]: r for r in rows if r["channels"] == c and r["side"] == max(x["side"] for x in rows)}
        if "nonlocal" in by and "polynl" in by:
            nl, poly = by["nonlocal"], by["polynl"]
            lines.append(
                f"C={c}, {nl['side']}x{nl['side']} positions: Non-local / Poly-NL time ratio = "
                f"{nl['time_s'] / poly['time_s']:.1f}x, memory ratio = "
                f"{nl['peak_bytes'] / max(poly['peak_bytes'], 1):.1f}x"
            )
    return lines


def plot(rows: Sequence[dict[str, Any]], out: str | os.PathLike) -> Path:
    """Log-log time and peak memory against positions, one line per block, one column per width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chans = sorted({r["channels"] for r in rows})
    fig, axes = plt.subplots(2, len(chans), figsize=(6 * len(chans), 9), squeeze=False)
    for j, c in enumerate(chans):
        sub = [r for r in rows if r["channels"] == c]
        for b in dict.fromkeys(r["block"] for r in sub):
            pts = sorted((r["positions"], r["time_s"], r["peak_bytes"]) for r in sub if r["block"] == b)
            style = dict(marker="o", linewidth=2.5 if b in ("polynl", "nonlocal") else 1.2, label=LABELS.get(b, b))
            axes[0][j].plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], **style)
            # a zero peak (below the 4 KiB page granularity of the RSS counters) has no log position
            mem = [(p[0], p[2] / 2**20) for p in pts if p[2] > 0]
            axes[1][j].plot([m[0] for m in mem], [m[1] for m in mem], **style)
        # reference slopes through the smallest Poly-NL / NL points
        for row, key, scale in ((0, "time_s", 1e3), (1, "peak_bytes", 1 / 2**20)):
            ax = axes[row][j]
            ns = sorted({r["positions"] for r in sub})
            if len(ns) > 1:
                ref = [r for r in sub if r["block"] == "polynl" and r["positions"] == ns[0]]
                if ref and ref[0][key] > 0:
                    v0 = ref[0][key] * scale
                    ax.plot(ns, [v0 * n / ns[0] for n in ns], "k:", linewidth=0.8, label="∝ N")
                    ax.plot(ns, [v0 * (n / ns[0]) ** 2 for n in ns], "k--", linewidth=0.8, label="∝ N²")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_xlabel("positions N = H·W")
        device = sub[0]["device"]
        axes[0][j].set_title(f"forward time, C={c}, batch 1 ({device})")
        axes[0][j].set_ylabel("time (ms)")
        axes[1][j].set_title(f"peak memory of the forward, C={c}")
        axes[1][j].set_ylabel("peak memory (MiB)")
        axes[0][j].legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, nargs="+", default=list(DEFAULT_CHANNELS), help="channel widths C")
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="sides s: s x s positions")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case (median), after 2 warm-up runs")
    p.add_argument("--blocks", nargs="+", default=list(ATTENTION_BLOCKS), choices=list(ATTENTION_BLOCKS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:i]")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: stable timings on a shared machine; 0 = torch's choice)",
    )
    p.add_argument("--out", default="bench_attention.png", help="PNG path for the figure")
    p.add_argument("--json", default=None, help="also write the raw rows to this JSON file")
    p.add_argument("--markdown", default=None, help="also write the block table and the ratios as Markdown here "
                   "(for the pages that quote them: scripts/sync_docs.py)")
    p.add_argument("--no-isolate", action="store_true", help="CPU: measure in this process (memory less reliable)")
    p.add_argument("--detector", action="store_true", help="also time whole detectors at VGA, with/without Poly-NL")
    p.add_argument("--no-blocks", action="store_true", help="skip the per-block benchmark (e.g. with --detector)")
    p.add_argument(
        "--detector-presets",
        nargs="+",
        default=["mnet025", "mnet025_polynl", "r18x025", "r18x025_polynl", "r50", "r50_polynl"],
    )
    p.add_argument("--_one-case", dest="one_case", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    isolate = not args.no_isolate and torch.device(args.device).type == "cpu"
    if args.threads and args.threads > 0 and (args.one_case is not None or not isolate):
        torch.set_num_threads(args.threads)  # isolated cases set it in their own process
    if args.one_case is not None:  # worker mode: one CPU case, JSON on stdout
        block, channels, side, repeats = json.loads(args.one_case)
        print(json.dumps(measure_case(block, channels, side, repeats, "cpu")))
        return 0
    threads = args.threads if args.threads and args.threads > 0 else "torch default"
    setup = f"torch {torch.__version__}, device {args.device}, CPU threads {threads}, one process per case: {isolate}"
    print(setup)
    result: dict[str, Any] = {}
    if not args.no_blocks:
        rows = bench_blocks(
            args.blocks, args.channels, args.sizes, args.repeats, args.device, isolate=isolate, threads=args.threads
        )
        table = markdown_table(rows)
        print()
        print(table)
        print()
        for line in ratio_lines(rows):
            print(line)
        if args.markdown:
            Path(args.markdown).write_text(
                f"{setup}; {datetime.date.today().isoformat()}\n\n{table.strip()}\n\n"
                + "\n".join(ratio_lines(rows)) + "\n", encoding="utf-8")
        path = plot(rows, args.out)
        print(f"figure: {path}")
        result["blocks"] = rows
    if args.detector:
        if args.threads and args.threads > 0:
            torch.set_num_threads(args.threads)  # all forks are done: safe in this process now
        size = (480, 640)
        print("\nwhole detector, VGA, random weights:")
        det_rows = bench_detector(args.detector_presets, size, args.repeats, args.device)
        print()
        print(detector_table(det_rows, size))
        result["detector"] = det_rows
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
