"""Small helpers the course notebooks share: where figures go, and saving them there.

Figures land in ``<repo>/figures/`` under stable names, whether a notebook runs in Jupyter (cwd =
``notebooks/``) or headless through ``handwriting course`` (which sets ``$HANDWRITING_FIGURES``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ._io import atomic_write

__all__ = ["repo_root", "figures_dir", "figure_path", "save_figure", "is_quick"]

FIGURES_ENV = "HANDWRITING_FIGURES"
QUICK_ENV = "HANDWRITING_QUICK"


def _is_checkout(path: Path) -> bool:
    return (path / "notebooks").is_dir() and (path / "pyproject.toml").is_file()


def repo_root() -> Path | None:
    """The course checkout: the directory holding ``notebooks/`` and ``pyproject.toml``.

    Looks at the current directory and its parents first (a notebook opened from ``notebooks/``), then beside
    the installed package (an editable install). ``None`` when neither is a checkout.
    """
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if _is_checkout(p):
            return p
    pkg_parent = Path(__file__).resolve().parent.parent
    return pkg_parent if _is_checkout(pkg_parent) else None


def figures_dir() -> Path:
    """``$HANDWRITING_FIGURES`` if set, else ``<repo>/figures``, else ``./figures`` (created if missing)."""
    env = os.environ.get(FIGURES_ENV)
    if env:
        d = Path(env)
    else:
        root = repo_root()
        d = (root if root is not None else Path.cwd()) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d


def figure_path(name: str) -> Path:
    """Path of the figure ``name`` (e.g. ``"data_offsets_distribution.png"``) in :func:`figures_dir`."""
    if Path(name).name != name:
        raise ValueError(f"figure_path: give a bare file name such as 'mdn_bias.png', not a path ({name!r})")
    if not Path(name).suffix:
        name += ".png"
    return figures_dir() / name


def save_figure(fig, name: str, dpi: int = 120, **kwargs) -> Path:
    """Save a matplotlib figure under its stable name in ``figures/`` (atomically) and return the path."""
    path = figure_path(name)
    fmt = path.suffix.lstrip(".")
    kwargs.setdefault("bbox_inches", "tight")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi, **kwargs)
    _readable(path)
    return path


def _readable(path: Path) -> None:
    """Give a freshly written file the usual permissions (the temporary file behind an atomic write is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(path, 0o666 & ~umask)
    except OSError:
        pass


def is_quick(default: bool = False) -> bool:
    """Whether the course runs in QUICK mode according to ``$HANDWRITING_QUICK`` (set by ``handwriting course``).

    Notebooks should use their own ``QUICK`` parameter; this is for code that has no access to it.
    """
    v = os.environ.get(QUICK_ENV)
    if v is None:
        return default
    return v.strip().lower() in ("1", "true", "yes", "on")
