"""Small helpers the course notebooks share: where figures go, saving them there, and picking held-out words.

Figures land in ``<repo>/figures/`` under stable names, whether a notebook runs in Jupyter (cwd =
``notebooks/``) or headless through ``handwriting course`` (which sets ``$HANDWRITING_FIGURES``).
:func:`pick_heldout_words` chooses the real words a figure sets beside generated ones from the held-out side of
the standard word-disjoint bigbank split, so no figure compares a model with words it was trained on.
:func:`train_recipe` is what the full mode of notebooks 03 and 04 trains with: the package's own recipe,
resumable, so that their figures come from the network the learner trained.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from ._io import atomic_write

__all__ = ["repo_root", "figures_dir", "figure_path", "save_figure", "is_quick", "bigbank_split",
           "pick_heldout_words", "train_recipe", "checkpoints"]

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


# ----------------------------------------------------------------------------------------------------------
# held-out words


@functools.lru_cache(maxsize=2)
def _split(path: str, mtime_ns: int, valid_fraction: float, seed: int) -> tuple[tuple, tuple]:
    from .datasets.jsonink import load_bigbank
    from .datasets.torch_data import word_disjoint_split

    train, valid = word_disjoint_split(load_bigbank(path), valid_fraction, seed=seed)
    return tuple(train), tuple(valid)


def bigbank_split(valid_fraction: float = 0.1, seed: int = 0, path=None) -> tuple[tuple, tuple]:
    """``(train, valid)``: all of bigbank split word-disjointly as the shipped bigbank models were trained
    (:func:`handwriting.datasets.torch_data.word_disjoint_split`, ``valid_fraction`` 0.1, seed 0); cached.

    ``path=None`` finds the file (:func:`handwriting.datasets.download.bigbank_path`, which raises a
    :class:`~handwriting.errors.DataError` naming the fix when it is not on this machine).
    """
    if path is None:
        from .datasets.download import bigbank_path

        path = bigbank_path()
    path = Path(path)
    return _split(os.fspath(path), path.stat().st_mtime_ns, float(valid_fraction), int(seed))


def pick_heldout_words(n: int, alphabet=None, min_chars: int = 4, max_chars: int = 8, *, skip: int = 0,
                       letters_only: bool = True, valid_fraction: float = 0.1, seed: int = 0, path=None) -> list:
    """Up to ``n`` real bigbank words (samples, data units) that no shipped bigbank model trained on: the
    held-out side of :func:`bigbank_split`, in file order, ``min_chars``..``max_chars`` characters long, letters
    only (``letters_only``), every character in ``alphabet`` (anything that supports ``in``: a model's
    ``Alphabet``, a string; ``None``: any), after skipping the first ``skip`` that qualify.

    Notebook 04 draws Graves' Fig. 15 (real vs generated) and the primes of Fig. 17 with it;
    ``tests/test_figures.py`` checks its words against the training split of the model's card.
    """
    valid = bigbank_split(valid_fraction, seed, path)[1]
    fit = [s for s in valid if min_chars <= len(s.text) <= max_chars and (not letters_only or s.text.isalpha())
           and (alphabet is None or all(ch in alphabet for ch in s.text))]
    return fit[skip: skip + n]


def train_recipe(kind: str, run_dir, data: str = "bigbank", device: str = "cpu", options=()):
    """Train ``kind`` with the package's recipe — exactly ``handwriting train KIND --data DATA`` with its defaults
    (plus ``options``) — into ``run_dir``, keeping a snapshot at every checkpoint; or, when ``run_dir`` already
    holds a run, continue it where it stopped (an interrupted notebook resumes exactly; a finished run is just
    loaded).  Returns the run's best model (lowest validation NLL)."""
    from .cli import main
    from .errors import HandwritingError
    from .generate import resolve_model

    run = Path(run_dir)
    if (run / "state.safetensors").is_file():
        args = ["train", "--resume", str(run)]
    else:
        args = ["train", kind, "--data", data, "--out", str(run), "--device", device, "--keep-checkpoints", *options]
    code = main(args)
    if code != 0:
        raise HandwritingError(f"training {kind} into {run} failed (exit status {code}); the messages above say why")
    return resolve_model(str(run / "best"))


def checkpoints(run_dir) -> list[tuple[int, Path]]:
    """The ``(step, path stem)`` of every ``stepN`` snapshot a run kept (``--keep-checkpoints``), by step."""
    import re

    found = []
    for p in Path(run_dir).glob("step*.json"):
        m = re.fullmatch(r"step(\d+)", p.stem)
        if m and p.with_suffix(".safetensors").is_file():
            found.append((int(m.group(1)), p.with_suffix("")))
    return sorted(found)
