"""Files shipped with the package: the default weights and the demo photos (no download, ever)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["default_weights_path", "demo_dir"]


def _shipped_folder(package_dir: str, repo_dir: str) -> list[Path]:
    """Where a folder shipped with the package lives: installed as ``retinaface_polynl/<package_dir>``
    (a plain ``pip install``), or at the top of the source tree (an editable install)."""
    from importlib import resources

    candidates = []
    try:
        candidates.append(Path(str(resources.files("retinaface_polynl") / package_dir)))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - unusual installs
        pass
    candidates.append(Path(__file__).resolve().parents[1] / repo_dir)
    return candidates


def default_weights_path() -> Path | None:
    """The checkpoint shipped with the package, if any (no download, ever)."""
    for folder in _shipped_folder("_weights", "weights"):
        default = folder / "default.pth"
        if default.is_file():
            return default
    return None


def demo_dir() -> Path | None:
    """The demo photos shipped with the package (``demo/astronaut.jpg``), if any."""
    for folder in _shipped_folder("_demo", "demo"):
        if (folder / "astronaut.jpg").is_file():
            return folder
    return None
