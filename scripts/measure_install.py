"""The light install's cost against issue 39's targets: size on disk and start-up times.

Builds a fresh virtual environment with ``pip install <repository>`` and no extras (or measures the
one given with ``--venv``), then prints a table: the environment's size on disk, the median wall
time of N fresh processes for ``import retinaface_polynl``, ``retinaface-polynl --help`` and
``retinaface-polynl detect demo/astronaut.jpg`` (a new interpreter each run: the program's cold
start; the operating system's file cache is warm after the first run, as on any machine that has
just installed the package), and the largest packages installed::

    python scripts/measure_install.py                       # build one in a temporary folder
    python scripts/measure_install.py --venv /tmp/light --runs 5

Targets (issue 39): at most 400 MB on disk; import and --help under 0.5 s; detect under 1.5 s.
Sizes are MiB (2^20 bytes) of allocated blocks, as ``du -sm`` counts them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "astronaut.jpg"
TARGETS = {"size": 400.0, "import": 0.5, "help": 0.5, "detect": 1.5}


def disk_usage_mib(folder: Path) -> float:
    """Allocated size of every file below ``folder`` (links not followed, hard links once)."""
    seen, total = set(), 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total / 2**20


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3*/site-packages")
    return found


def largest_packages(venv: Path, count: int = 8) -> list[tuple[str, float]]:
    """The biggest top-level entries of site-packages; a wheel's ``<name>.libs`` counted with ``<name>``."""
    sizes: dict[str, float] = {}
    for entry in site_packages(venv).iterdir():
        if entry.name.endswith((".dist-info", ".pth")) or entry.name == "__pycache__":
            continue
        name = entry.name.removesuffix(".libs").replace("opencv_python_headless", "cv2")
        sizes[name] = sizes.get(name, 0.0) + (disk_usage_mib(entry) if entry.is_dir() else entry.stat().st_size / 2**20)
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:count]


def build_venv(folder: Path) -> Path:
    venv = folder / "light-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(ROOT)], check=True)
    return venv


def median_seconds(command: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, help="measure this environment (default: build a fresh light one)")
    parser.add_argument("--runs", type=int, default=5, help="processes per timing; the median is shown (default: 5)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")

    with tempfile.TemporaryDirectory(prefix="measure_install_") as tmp:
        work = Path(tmp)
        venv = args.venv.resolve() if args.venv else build_venv(work)
        python, program = str(venv / "bin" / "python"), str(venv / "bin" / "retinaface-polynl")
        torch_there = subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0
        rows = [("size on disk (MiB)", disk_usage_mib(venv), TARGETS["size"])]
        commands = {
            "import": [python, "-c", "import retinaface_polynl"],
            "help": [program, "--help"],
            "detect": [program, "detect", str(DEMO)],
        }
        labels = {"import": "import retinaface_polynl (s)", "help": "retinaface-polynl --help (s)",
                  "detect": "retinaface-polynl detect demo/astronaut.jpg (s)"}
        for key, command in commands.items():
            try:
                value = median_seconds(command, args.runs, work)
            except RuntimeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                value = float("nan")
            rows.append((labels[key], value, TARGETS[key]))
        packages = largest_packages(venv)

    print(f"{venv}: torch {'importable' if torch_there else 'not importable'}; {os.cpu_count()} CPU cores; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; medians of {args.runs} fresh processes")
    print()
    print("| measure | value | target | met |")
    print("|---|---:|---:|:---:|")
    for label, value, target in rows:
        met = "–" if value != value else ("yes" if value <= target else "no")
        shown = "failed" if value != value else (f"{value:.0f}" if "MiB" in label else f"{value:.2f}")
        print(f"| {label} | {shown} | <= {target:g} | {met} |")
    print()
    print("largest installed packages (MiB): " + ", ".join(f"{n} {s:.0f}" for n, s in packages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
