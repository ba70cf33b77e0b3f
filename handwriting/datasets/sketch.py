"""Load sketch-rnn / QuickDraw ``.npz`` files (stroke-3 drawings) as samples — without running pickles.

The sketch-rnn data sets (one ``.npz`` per QuickDraw category, e.g. ``cat.npz``) hold three keys, ``train``,
``valid`` and ``test``, each a 1-D *object* array of drawings; a drawing is an ``(n, 3)`` integer array
(int16) of stroke-3 rows ``(dx, dy, pen_lifted)``: the move from the previous point and whether the pen
lifts after this point.  That is the project's ``(dx, dy, end_of_stroke)`` convention up to the y axis:
QuickDraw's y grows **downwards**, so it is flipped here.  A drawing whose last row does not lift the pen
gets ``end_of_stroke = 1`` there (the convention needs it).  Units stay QuickDraw's (the drawings were
simplified to fit 256 × 256 pixels, so offsets are whole pixels, typically a few to a few tens); pass
``scale`` to change them, or let a :class:`~handwriting.strokes.Normalizer` (MDN models) or
``PolarTokenizer.fit_scale`` (token models) adapt.

Security: object arrays are stored as Python pickles, and ``np.load(..., allow_pickle=True)`` will run
whatever a pickle asks for — a crafted file can execute arbitrary code.  This loader never calls it.  It
reads the zip members itself, parses each ``.npy`` header first, reads plain arrays with
``allow_pickle=False`` and unpickles object arrays with an unpickler that can construct nothing but numpy
arrays and dtypes (any other class or function is refused with a :class:`DataError`), then checks every
drawing's shape, dtype and values.  That closes the code-execution hole; it does not protect against
resource exhaustion (a huge or zip-bomb file can still use a lot of memory), so load files you trust.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import numpy.lib.format as npformat

from ..errors import DataError
from ..strokes import Sample

__all__ = ["load_sketch_npz", "read_npz", "SPLITS"]

SPLITS = ("train", "valid", "test")

_RECONSTRUCT = np.array([]).__reduce__()[0]  # numpy's array reconstructor, whatever module it lives in
_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays (and arrays of arrays) and refuses every other global."""

    def __init__(self, file, where: str):
        super().__init__(file, encoding="latin1")  # files written by Python 2 store bytes as str
        self.where = where

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if (module, name) == ("_codecs", "encode"):  # Python 2 pickles of byte strings
            import codecs

            return codecs.encode
        raise DataError(
            f"{self.where}: the file's pickle asks for {module}.{name}, which a drawing array never needs; "
            "refusing to load it (it may be malicious). Use the original sketch-rnn .npz files"
        )

    def persistent_load(self, pid):  # pragma: no cover - numpy never writes persistent ids
        raise DataError(f"{self.where}: unexpected persistent reference in the pickle; refusing to load it")


def read_npz(path: str | os.PathLike, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, read without executing pickles (see the module docstring).

    ``keys`` restricts the members read (others are not touched).  Object arrays come back as object
    arrays whose elements are numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the path of a sketch-rnn .npz file (e.g. cat.npz)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not an .npz file (not a zip archive: {exc}); download the sketch-rnn .npz again") from None
    out: dict[str, np.ndarray] = {}
    wanted = None if keys is None else set(keys)
    with zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[:-4]
            if wanted is not None and key not in wanted:
                continue
            where = f"{path}: array {key!r}"
            try:
                with zf.open(info) as raw:
                    f = io.BytesIO(raw.read())
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DataError(f"{where}: cannot read the member ({exc}); the file is damaged, download it again") from None
            out[key] = _read_npy(f, where)
    return out


def _read_npy(f: io.BytesIO, where: str) -> np.ndarray:
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npformat.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as exc:
        raise DataError(f"{where}: not a valid .npy member ({exc}); the file is damaged, download it again") from None
    if not dtype.hasobject:
        f.seek(0)
        try:
            return npformat.read_array(f, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{where}: cannot read the array ({exc}); the file is damaged") from None
    if dtype != np.dtype(object):
        raise DataError(f"{where}: structured dtype {dtype} with Python objects is not a drawing array; refusing it")
    try:
        arr = _ArrayOnlyUnpickler(f, where).load()
    except DataError:
        raise
    except Exception as exc:  # truncated or garbled pickle data
        raise DataError(f"{where}: the object array cannot be read ({type(exc).__name__}: {exc}); the file is damaged") from None
    if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
        raise DataError(f"{where}: the header promises an array of shape {tuple(shape)}, the data holds something else")
    return arr


def _drawing(d, where: str, scale: float) -> np.ndarray:
    if not isinstance(d, np.ndarray) or d.dtype.hasobject:
        raise DataError(f"{where}: expected an (n, 3) numeric array of (dx, dy, pen_lifted), got {type(d).__name__}")
    if d.ndim != 2 or d.shape[1] != 3:
        raise DataError(f"{where}: expected shape (n, 3) of (dx, dy, pen_lifted), got {d.shape}; is this a stroke-3 file?")
    if len(d) == 0:
        raise DataError(f"{where}: the drawing is empty; drop it from the file")
    if not (np.issubdtype(d.dtype, np.integer) or np.issubdtype(d.dtype, np.floating)):
        raise DataError(f"{where}: dtype {d.dtype} is not numeric")
    out = d.astype(np.float32)
    if not np.isfinite(out).all():
        i = int(np.argmax(~np.isfinite(out).all(axis=1)))
        raise DataError(f"{where}: row {i} is not finite ({out[i].tolist()}); clean the drawing")
    pen = out[:, 2]
    bad = (pen != 0) & (pen != 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{where}: row {i} has pen_lifted={pen[i]:g}; stroke-3 needs 0 or 1 (stroke-5 files need converting)")
    out[:, :2] *= scale
    out[:, 1] *= -1.0  # QuickDraw's y grows downwards; ours grows upwards
    out[-1, 2] = 1.0
    return out


def load_sketch_npz(
    path: str | os.PathLike,
    split: str | Iterable[str] = "train",
    limit: int | None = None,
    scale: float = 1.0,
    label: str | None = None,
) -> list:
    """Drawings of a sketch-rnn ``.npz`` (``split``: ``"train"``, ``"valid"``, ``"test"``, a list of them, or
    ``"all"``) as :class:`~handwriting.strokes.Sample` s in the project convention (y up).

    ``text`` is ``label`` (default: the file's name without extension, e.g. ``"cat"``) so class-conditioned
    models can use it; ``source`` is ``"<file>#<split>/<index>"``.  ``limit`` keeps the first drawings of
    each split; ``scale`` multiplies the offsets.  Bad files raise :class:`DataError` naming the file, the
    split, the drawing and the row."""
    path = Path(path)
    splits = list(SPLITS) if split == "all" else ([split] if isinstance(split, str) else list(split))
    for s in splits:
        if s not in SPLITS:
            raise DataError(f"load_sketch_npz: unknown split {s!r}; use one of {', '.join(SPLITS)} or 'all'")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"load_sketch_npz: limit must be a non-negative integer or None, got {limit!r}")
    if not (scale > 0 and np.isfinite(scale)):
        raise ValueError(f"load_sketch_npz: scale must be a positive number, got {scale!r}")
    arrays = read_npz(path, splits)
    text = path.stem if label is None else label
    samples = []
    for s in splits:
        if s not in arrays:
            have = ", ".join(sorted(read_npz_keys(path))) or "none"
            raise DataError(f"{path}: no {s!r} array (the file has: {have}); sketch-rnn files hold train, valid and test")
        arr = arrays[s]
        if arr.ndim != 1 and not (arr.ndim == 3 and not arr.dtype.hasobject):  # (m, n, 3): equal-length drawings
            raise DataError(f"{path}: array {s!r} has shape {arr.shape}; expected a 1-D array of drawings")
        items = arr if limit is None else arr[:limit]
        for i, d in enumerate(items):
            where = f"{path}: {s} drawing {i}"
            samples.append(Sample(_drawing(d, where, scale), text=text, writer=None, source=f"{path.name}#{s}/{i}"))
    return samples


def read_npz_keys(path: str | os.PathLike) -> list[str]:
    """The array names of an ``.npz`` file (nothing is unpickled)."""
    with zipfile.ZipFile(path) as zf:
        return [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
