"""JSON handwriting formats: the cursive transformer's ``bigbank`` words and the project's own sample files.

Both loaders return ``list[Sample]`` in the project's stroke convention (see :mod:`handwriting.strokes`):
``(N, 3)`` float32 rows of ``(dx, dy, end_of_stroke)``, y growing **upwards**, the last row ending a stroke.

The cursive-transformer format (:func:`load_bigbank`)
-----------------------------------------------------
A JSON list (plain ``.json`` or inside a ``.zip``; ``__MACOSX/`` entries are ignored) of items::

    {"metadata": {"author": "Sam", "asciiSequence": "hlin", "pointCount": 240,
                  "strokeCount": 3, "aspectRatio": 6},
     "points": [[x, y, pen_down], ...]}

``points`` are absolute; x is multiplied by ``aspectRatio`` to get the true shape, y grows downwards in the
file and is flipped (``y' = -y``), and ``pen_down`` is 0 on the last point of each stroke, so
``end_of_stroke = 1 - pen_down``.  The last point always ends a stroke (it is set to 1 if the file says
otherwise: the recording ends there).  ``pointCount`` and ``strokeCount`` are optional; when present they
must agree with ``points``.

The project's own format (:func:`save_samples` / :func:`load_samples`)
----------------------------------------------------------------------
Samples captured by a user (notebook 08) are stored as one UTF-8 JSON object per file::

    {"format": "handwriting-samples",      # required, exactly this string
     "version": 1,                         # required integer; newer versions are refused with a clear error
     "writer": "ada",                      # optional: default writer for samples that name none (or null)
     "units": "px",                        # optional free text describing the coordinate units (or null)
     "samples": [                          # required list (may be empty)
       {"text": "hello",                   # required string (may be empty for unlabelled writing)
        "writer": "ada",                   # optional string or null; falls back to the file's writer
        "created": "2025-05-01T12:00:00+00:00",   # optional ISO 8601 time the sample was saved
        "strokes": [[[x, y], [x, y], ...], # required, at least one stroke; each stroke a list of at least
                    [[x, y]]]}             #   one [x, y] pair of finite numbers (a one-point stroke is a dot)
     ]}

Coordinates are absolute with **y growing upwards** (the same orientation as the offsets; a canvas whose y
grows downwards must be flipped before saving).  Unknown keys are ignored, so later version-1 writers may
add fields.  Offsets saved and loaded again come back bit-for-bit (the absolute points are written as
float64 with the shortest exact representation), unless a single offset is smaller than about 2⁻²⁹ of the
coordinates' magnitude.

Bad input
---------
Anything malformed raises :class:`~handwriting.errors.DataError` naming the file, the sample index, the field
and the fix: unreadable zip or JSON (with line and column), a missing or mistyped field, NaN or infinite
coordinates, coordinates too large for float32 offsets (once multiplied by ``aspectRatio`` and differenced),
a pen flag other than 0/1, an empty sample or stroke.  One-point strokes are legal and kept.  A zip member
that is encrypted, or larger than ``MAX_ZIP_MEMBER`` (512 MiB) uncompressed, is refused: unzip it and pass
the ``.json`` file.

Impossible jumps: a move between two consecutive points longer than ``max_jump`` (default 50) times the
median height of the file's samples is an error (it is almost always a corrupt point); pass
``max_jump=None`` to accept such files anyway.  The first row (the position of the first point relative to
the origin) is not a pen movement and is never checked.  In bigbank the largest move is about 14 median
word heights.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._io import atomic_write
from ..errors import DataError
from ..strokes import (
    Sample,
    check_offsets,
    from_strokes,
    grid_resample,
    reorder_late_marks,
    stroke_slices,
    to_absolute,
    to_strokes,
)

__all__ = [
    "BIGBANK_ALPHABET",
    "FORMAT",
    "VERSION",
    "MAX_JUMP",
    "MAX_ZIP_MEMBER",
    "bigbank_pen",
    "load_bigbank",
    "load_samples",
    "load_synthbank",
    "save_samples",
]

#: The 70 characters of bigbank (no space: its samples are single words).
BIGBANK_ALPHABET = "!\"'(),.0123456789?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: ``format`` and ``version`` of the project's own sample files.
FORMAT = "handwriting-samples"
VERSION = 1

#: Default limit on a move between consecutive points, in median sample heights of the file.
MAX_JUMP = 50.0

#: Largest uncompressed ``.json`` member read from a zip, in bytes (bigbank's is 19 MB): a bigger one is
#: refused instead of being inflated into memory (a zip bomb).  Plain ``.json`` files have no limit.
MAX_ZIP_MEMBER = 512 * 2**20


# ----------------------------------------------------------------------------------------------------------
# reading files


def _read_json(path: Path, kind: str) -> tuple[Any, str]:
    """Parse ``path`` (``.json`` or a ``.zip`` holding one ``.json``); return (object, name of the JSON file)."""
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a {kind} .json or .zip file")
    name = path.name
    try:
        if path.suffix.lower() == ".zip":
            raw, name = _read_zip_member(path, kind)
        else:
            raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc}); check its permissions") from exc
    where = f"{path}" if name == path.name else f"{path} (member {name})"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{where}: not UTF-8 text (byte {exc.start}); a {kind} file must be UTF-8 JSON — "
            "is it the right file?"
        ) from exc
    try:
        return json.loads(text), name
    except json.JSONDecodeError as exc:
        truncated = exc.msg.startswith("Unterminated string") or len(text.rstrip()) - exc.pos <= 32
        hint = " (the file looks truncated: download or save it again)" if truncated else ""
        raise DataError(
            f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}"
        ) from exc
    except RecursionError as exc:
        raise DataError(f"{where}: JSON nested too deeply to be a {kind} file") from exc


def _read_zip_member(path: Path, kind: str) -> tuple[bytes, str]:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [
                i
                for i in zf.infolist()
                if not i.is_dir()
                and not i.filename.startswith("__MACOSX/")
                and not Path(i.filename).name.startswith("._")
                and i.filename.lower().endswith(".json")
            ]
            if len(members) != 1:
                listing = ", ".join(zf.namelist()) or "nothing"
                what = "no .json member" if not members else f"{len(members)} .json members"
                raise DataError(
                    f"{path}: expected exactly one .json file inside the zip, found {what} (it holds: {listing}); "
                    f"pass the {kind} .json file itself or a zip holding just it"
                )
            info = members[0]
            name = Path(info.filename).name
            where = f"{path} (member {name})"
            if info.flag_bits & 0x1:
                raise DataError(
                    f"{where}: the member is encrypted (password-protected), which is not supported; decrypt it "
                    "(unzip it with its password) and pass the .json file, or re-zip it without a password"
                )
            cap = MAX_ZIP_MEMBER

            def too_big(size: str) -> DataError:
                return DataError(
                    f"{where}: uncompressed size {size} is over the {cap:,}-byte limit for a zipped {kind} "
                    "file (a zip bomb?); if the file is genuine, unzip it yourself and pass the .json file, or "
                    "raise handwriting.datasets.jsonink.MAX_ZIP_MEMBER"
                )

            if info.file_size > cap:
                raise too_big(f"{info.file_size:,} bytes")
            with zf.open(info) as f:
                raw = f.read(cap + 1)  # the header's size can lie: never inflate more than the cap
            if len(raw) > cap:
                raise too_big(f"more than {cap:,} bytes (its header says {info.file_size:,})")
            return raw, name
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        fix = ("download it again (`python -m handwriting data download bigbank --force`)" if kind == "bigbank"
               else "restore it from a backup, or pass the .json file itself")
        raise DataError(
            f"{path}: not a readable zip archive ({exc}); the file is probably truncated or corrupt — {fix}"
        ) from exc


# finite in the file, but not once converted to the float32 offsets the package works with
_OVERFLOW = f"it or the move from the previous point is beyond float32's range (±{np.finfo(np.float32).max:.2g})"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_pair(p: Any) -> bool:
    return isinstance(p, list) and len(p) == 2 and all(map(_is_number, p))


def _is_finite_number(v: Any) -> bool:
    try:
        return _is_number(v) and math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


# ----------------------------------------------------------------------------------------------------------
# bigbank

#: How bigbank was recorded (in its loaded units, x after the aspect ratio): a point each time the pen moved
#: 0.01 along its larger axis, every point on a 0.005 grid, and x then stored divided by the aspect ratio 6 and
#: rounded to 4 decimals (so x moves of 0.0048 and 0.0054 for one grid step).
BIGBANK_STEP, BIGBANK_GRID, BIGBANK_ASPECT = 0.01, 0.005, 6.0


def bigbank_pen(offsets: np.ndarray) -> np.ndarray:
    """``offsets`` (bigbank units) as bigbank's recorder would have stored them: on its lattice.  The cursive
    transformer learns that lattice exactly, so ink from anywhere else (a model's writing, an augmented word)
    must be put on it before the network can learn from it as from bigbank."""
    strokes = to_strokes(grid_resample(offsets, BIGBANK_STEP, BIGBANK_GRID))
    for s in strokes:
        s[:, 0] = BIGBANK_ASPECT * np.round(s[:, 0] / BIGBANK_ASPECT, 4)
    return from_strokes(strokes).astype(np.float32)


def load_bigbank(
    path: str | os.PathLike | None = None,
    limit: int | None = None,
    max_jump: float | None = MAX_JUMP,
) -> list[Sample]:
    """Load the cursive transformer's words (``bigbank_3500.json.zip`` or its ``.json``) as samples.

    ``path=None`` finds the file with :func:`handwriting.datasets.download.bigbank_path` (it is never
    downloaded implicitly).  ``limit`` keeps only the first ``limit`` words.  Each sample's ``text`` is the
    word, ``writer`` the author and ``source`` ``"<json file name>#<index>"``.  See the module docstring for
    the conversion and for ``max_jump``.
    """
    if path is None:
        from .download import bigbank_path

        path = bigbank_path()
    path = Path(path)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValueError(f"load_bigbank: limit must be a non-negative integer or None, got {limit!r}")
    data, name = _read_json(path, "bigbank")
    if not isinstance(data, list):
        raise DataError(
            f"{path}: expected a JSON list of words ({{'metadata': ..., 'points': ...}} items), "
            f"got a JSON {type(data).__name__}; is it a cursive-transformer file? "
            "(the project's own sample files are read with load_samples)"
        )
    items = data if limit is None else data[:limit]
    if not items:
        return []

    def fail(i: int, field: str, problem: str, fix: str) -> DataError:
        return DataError(f"{path}: sample {i}, field {field}: {problem}; {fix}")

    n = len(items)
    texts: list[str] = []
    writers: list[str | None] = []
    ratios = np.empty(n, dtype=np.float64)
    lengths = np.empty(n, dtype=np.int64)
    counts: list[tuple[int, Any, Any]] = []
    point_lists = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise fail(i, "(item)", f"expected an object with 'metadata' and 'points', got {type(item).__name__}",
                       "fix or remove this item")
        meta = item.get("metadata")
        if not isinstance(meta, dict):
            problem = "missing" if meta is None else f"not an object ({type(meta).__name__})"
            raise fail(i, "metadata", problem, "every item needs a metadata object with asciiSequence and aspectRatio")
        text = meta.get("asciiSequence")
        if not isinstance(text, str) or not text:
            raise fail(i, "metadata.asciiSequence", f"must be a non-empty string, got {text!r}",
                       "give the word's transcription or remove the item")
        author = meta.get("author")
        if author is not None and not isinstance(author, str):
            raise fail(i, "metadata.author", f"must be a string, got {author!r}", "fix or remove the field")
        ratio = meta.get("aspectRatio")
        if not _is_finite_number(ratio) or ratio <= 0:
            raise fail(i, "metadata.aspectRatio", f"must be a positive finite number, got {ratio!r}",
                       "bigbank uses 6 for every word")
        pts = item.get("points")
        if not isinstance(pts, list):
            problem = "missing" if pts is None else f"must be a list of [x, y, pen_down], got {type(pts).__name__}"
            raise fail(i, "points", problem, "fix or remove the item")
        if not pts:
            raise fail(i, "points", "the sample is empty (no points)", "remove the item or record its points")
        texts.append(text)
        writers.append(author)
        ratios[i] = ratio
        lengths[i] = len(pts)
        counts.append((i, meta.get("pointCount"), meta.get("strokeCount")))
        point_lists.append(pts)

    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])

    flat = [p for pts in point_lists for p in pts]
    try:
        arr = np.array(flat)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype.kind not in "biuf":
        raise _locate_bad_rows(path, point_lists, 3, "points", "[x, y, pen_down]")
    arr = arr.astype(np.float64, copy=False)

    def where_flat(k: int) -> tuple[int, int]:
        i = int(np.searchsorted(starts, k, side="right") - 1)
        return i, int(k - starts[i])

    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        i, j = where_flat(int(np.argmin(finite)))
        raise fail(i, f"points[{j}]", f"non-finite coordinate {arr[starts[i] + j].tolist()}",
                   "fix the point or remove the item")
    pen = arr[:, 2]
    notbit = (pen != 0) & (pen != 1)
    if notbit.any():
        i, j = where_flat(int(np.argmax(notbit)))
        raise fail(i, f"points[{j}][2] (pen_down)", f"must be 0 or 1, got {float(pen[starts[i] + j]):g}",
                   "pen_down is 1 inside a stroke and 0 on its last point")

    lifts = np.add.reduceat((pen == 0).astype(np.int64), starts)
    for i, pc, sc in counts:
        if pc is not None and (not _is_number(pc) or pc != lengths[i]):
            raise fail(i, "metadata.pointCount", f"says {pc!r} but 'points' holds {lengths[i]} points",
                       "the item is probably truncated: re-download the file, or fix or drop pointCount")
        if sc is not None and (not _is_number(sc) or sc != lifts[i]):
            raise fail(i, "metadata.strokeCount", f"says {sc!r} but 'points' holds {lifts[i]} strokes "
                       "(points with pen_down = 0)", "fix the pen flags or drop strokeCount")

    absolute = np.empty_like(arr)
    offsets = np.empty_like(arr)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, naming the point
        absolute[:, 0] = arr[:, 0] * np.repeat(ratios, lengths)
        absolute[:, 1] = -arr[:, 1]
        absolute[:, 2] = 1.0 - pen
        absolute[starts + lengths - 1, 2] = 1.0  # the recording ends the last stroke
        offsets[:, :2] = np.diff(absolute[:, :2], axis=0, prepend=np.zeros((1, 2)))
        offsets[starts, :2] = absolute[starts, :2]  # each sample's first row is relative to the origin
        offsets[:, 2] = absolute[:, 2]
        offsets = offsets.astype(np.float32)
    overflow = ~np.isfinite(offsets).all(axis=1)
    if overflow.any():
        i, j = where_flat(int(np.argmax(overflow)))
        raise fail(i, f"points[{j}]", f"coordinate {arr[starts[i] + j].tolist()} is too large: {_OVERFLOW} "
                   f"(x is multiplied by aspectRatio {ratios[i]:g})", "fix the point or remove the item")

    _check_jumps(path, absolute, starts, lengths, max_jump)

    return [
        Sample(
            offsets[s : s + m].copy(),
            text=texts[i],
            writer=writers[i],
            source=f"{name}#{i}",
        )
        for i, (s, m) in enumerate(zip(starts.tolist(), lengths.tolist()))
    ]


def load_synthbank(path: str | os.PathLike | None = None, limit: int | None = None) -> list[Sample]:
    """Load the cursive transformer's 3,000 real English words (``synthbank_3000.json.zip``), bigbank's format.

    Its writer often dotted the i's and crossed the t's after finishing the word; those late marks are moved
    beside their letters (:func:`handwriting.strokes.reorder_late_marks`), or a model trained on the words
    learns to end every word with stray dots and dashes.  ``path=None`` finds the file with
    :func:`handwriting.datasets.download.dataset_path` (never downloading).
    """
    if path is None:
        from .download import dataset_path

        path = dataset_path("synthbank")
    samples = load_bigbank(path, limit=limit)
    return [s.replace(offsets=reorder_late_marks(s.offsets)[0]) for s in samples]


def _locate_bad_rows(path: Path, point_lists: Sequence[list], width: int, field: str, shape: str) -> DataError:
    """Slow path, only run once something is known to be wrong: find the first malformed point."""
    for i, pts in enumerate(point_lists):
        for j, p in enumerate(pts):
            numbers = isinstance(p, list) and all(_is_finite_number(v) or isinstance(v, bool) for v in p)
            if not numbers or len(p) != width:
                return DataError(
                    f"{path}: sample {i}, field {field}[{j}]: expected {shape} numbers, got {p!r}; "
                    "fix the point or remove the item"
                )
    return DataError(f"{path}: field {field}: points are not all {shape} numbers; fix the file")  # pragma: no cover


def _check_jumps(
    path: Path,
    absolute: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    max_jump: float | None,
    field: str = "points",
) -> None:
    """Raise if a move inside a sample exceeds ``max_jump`` × the median sample height of the file."""
    if max_jump is None or len(absolute) < 2:
        return
    y = absolute[:, 1]
    heights = np.maximum.reduceat(y, starts) - np.minimum.reduceat(y, starts)
    positive = heights[heights > 0]
    if len(positive) == 0:
        return
    median = float(np.median(positive))
    step = np.hypot(np.diff(absolute[:, 0]), np.diff(y))
    step[starts[1:] - 1] = 0.0  # the move from one sample's last point to the next sample's first
    limit = max_jump * median
    big = step > limit
    if big.any():
        k = int(np.argmax(big)) + 1  # index of the point the pen jumped to
        i = int(np.searchsorted(starts, k, side="right") - 1)
        j = int(k - starts[i])
        raise DataError(
            f"{path}: sample {i}, field {field} (point {j}): the pen jumps {step[k - 1]:.4g} units, more than "
            f"{max_jump:g} × the median sample height ({median:.4g}); the point is almost certainly corrupt — "
            f"fix or remove that sample, or load with max_jump=None to accept it"
        )


# ----------------------------------------------------------------------------------------------------------
# the project's own format


def save_samples(
    path: str | os.PathLike,
    samples: Sequence[Sample],
    writer: str | None = None,
    units: str | None = None,
) -> Path:
    """Write ``samples`` to ``path`` in the project's own JSON format (see the module docstring).

    ``writer`` is stored as the file's default writer (samples without one inherit it when loaded);
    ``units`` is free text describing the coordinates.  Every sample is checked before anything is written,
    and the file is replaced atomically, so a failure never leaves a partial file.  Returns the path.
    """
    path = Path(path)
    for name, value in (("writer", writer), ("units", units)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"save_samples: {name} must be a string or None, got {value!r}")
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    lines = []
    for i, s in enumerate(samples):
        where = f"save_samples({path}): sample {i}"
        if not isinstance(s, Sample):
            raise DataError(f"{where}: expected a handwriting Sample, got {type(s).__name__}")
        if not isinstance(s.text, str):
            raise DataError(f"{where}, field text: must be a string, got {s.text!r}")
        if s.writer is not None and not isinstance(s.writer, str):
            raise DataError(f"{where}, field writer: must be a string or None, got {s.writer!r}")
        off = check_offsets(s.offsets, where=f"{where}, field offsets")
        pts = to_absolute(off)
        strokes = [pts[sl, :2].tolist() for sl in stroke_slices(off)]
        entry: dict[str, Any] = {"text": s.text}
        if s.writer is not None:
            entry["writer"] = s.writer
        entry["created"] = created
        entry["strokes"] = strokes
        lines.append(json.dumps(entry, ensure_ascii=False, allow_nan=False, separators=(",", ":")))
    head = json.dumps({"format": FORMAT, "version": VERSION, "writer": writer, "units": units}, ensure_ascii=False)
    body = head[:-1] + ', "samples": [' + ("\n" + ",\n".join(lines) + "\n" if lines else "") + "]}\n"
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(body)
    return path


def load_samples(path: str | os.PathLike, max_jump: float | None = MAX_JUMP) -> list[Sample]:
    """Load a file written by :func:`save_samples` (or by hand, following the schema in the module docstring).

    Every field is validated; errors name the file, the sample index, the field and the fix.  A file of a
    newer format version than this package knows is refused.  ``source`` is ``"<file name>#<index>"``.
    """
    path = Path(path)
    doc, _ = _read_json(path, "handwriting-samples")
    if not isinstance(doc, dict):
        hint = " (a list of items is the cursive-transformer format: use load_bigbank)" if isinstance(doc, list) else ""
        raise DataError(f"{path}: expected a JSON object with format {FORMAT!r}, got a JSON {type(doc).__name__}{hint}")
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise DataError(
            f"{path}, field format: expected {FORMAT!r}, got {fmt!r}; this is not a handwriting samples file"
        )
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DataError(f"{path}, field version: expected a positive integer, got {version!r}; version 1 is current")
    if version > VERSION:
        raise DataError(
            f"{path}, field version: the file uses format version {version}, but this version of handwriting "
            f"reads version {VERSION} only; upgrade the package (pip install -U handwriting)"
        )
    default_writer = doc.get("writer")
    if default_writer is not None and not isinstance(default_writer, str):
        raise DataError(f"{path}, field writer: must be a string or null, got {default_writer!r}")
    units = doc.get("units")
    if units is not None and not isinstance(units, str):
        raise DataError(f"{path}, field units: must be a string or null, got {units!r}")
    entries = doc.get("samples")
    if not isinstance(entries, list):
        problem = "missing" if entries is None else f"must be a list, got {type(entries).__name__}"
        raise DataError(f"{path}, field samples: {problem}; a file holds {{'samples': [...]}} (an empty list is fine)")

    def fail(i: int, field: str, problem: str, fix: str) -> DataError:
        return DataError(f"{path}: sample {i}, field {field}: {problem}; {fix}")

    samples = []
    absolutes = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise fail(i, "(sample)", f"expected an object, got {type(e).__name__}",
                       "each sample is an object {'text': ..., 'strokes': ...}")
        text = e.get("text")
        if not isinstance(text, str):
            raise fail(i, "text", "missing" if text is None else f"must be a string, got {text!r}",
                       'give the transcription ("" for unlabelled writing)')
        w = e.get("writer", None)
        if w is not None and not isinstance(w, str):
            raise fail(i, "writer", f"must be a string or null, got {w!r}", "fix or remove the field")
        created = e.get("created")
        if created is not None:
            try:
                if not isinstance(created, str):
                    raise ValueError
                _dt.datetime.fromisoformat(created)
            except ValueError:
                raise fail(i, "created", f"must be an ISO 8601 time like '2025-05-01T12:00:00+00:00', got {created!r}",
                           "fix or remove the field") from None
        strokes = e.get("strokes")
        if not isinstance(strokes, list):
            problem = "missing" if strokes is None else f"must be a list of strokes, got {type(strokes).__name__}"
            raise fail(i, "strokes", problem, "give a list of strokes, each a list of [x, y] points")
        if not strokes:
            raise fail(i, "strokes", "the sample is empty (no strokes)", "remove the sample or record its strokes")
        arrays = []
        for k, st in enumerate(strokes):
            if not isinstance(st, list) or not st:
                problem = ("the stroke is empty" if isinstance(st, list)
                           else f"must be a list of [x, y] points, got {st!r}")
                raise fail(i, f"strokes[{k}]", problem, "remove it (a pen touch is a one-point stroke [[x, y]])")
            try:
                a = np.array(st)
            except (ValueError, TypeError):
                a = None
            if a is None or a.ndim != 2 or a.shape[1] != 2 or a.dtype.kind not in "iuf":
                j = next((j for j, p in enumerate(st) if not _is_pair(p)), 0)
                raise fail(i, f"strokes[{k}][{j}]", f"expected an [x, y] pair of numbers, got {st[j]!r}",
                           "fix the point")
            bad = ~np.isfinite(a).all(axis=1)
            if bad.any():
                j = int(np.argmax(bad))
                raise fail(i, f"strokes[{k}][{j}]", f"non-finite coordinate {st[j]!r}", "fix or remove the point")
            arrays.append(a.astype(np.float64, copy=False))
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, naming the point
            off = from_strokes(arrays, where=f"{path}: sample {i}, field strokes")
        overflow = ~np.isfinite(off).all(axis=1)
        if overflow.any():
            r = int(np.argmax(overflow))
            ends = np.cumsum([len(a) for a in arrays])
            k = int(np.searchsorted(ends, r, side="right"))
            j = r - (int(ends[k - 1]) if k else 0)
            raise fail(i, f"strokes[{k}][{j}]", f"coordinate {strokes[k][j]!r} is too large: {_OVERFLOW}",
                       "fix or remove the point")
        absolutes.append(np.vstack(arrays))
        samples.append(Sample(off, text=text, writer=w if w is not None else default_writer, source=f"{path.name}#{i}"))

    if samples:
        lengths = np.array([len(a) for a in absolutes], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        _check_jumps(path, np.vstack(absolutes), starts, lengths, max_jump, field="strokes")
    return samples
