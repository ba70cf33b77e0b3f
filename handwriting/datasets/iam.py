"""IAM On-Line Handwriting Database (IAM-OnDB): text lines written on a whiteboard, with transcriptions.

IAM-OnDB needs a free (non-commercial) registration, so it never ships with the project; see
``data/README.md`` for where to get it.  Unpack it into one folder ``root``::

    root/lineStrokes/a01/a01-000/a01-000u-01.xml   one XML file per text line (lineStrokes-all.tar.gz;
                                                    root/lineStrokes-all/lineStrokes/... also works)
    root/ascii/a01/a01-000/a01-000u.txt            the form's transcription (ascii-all.tar.gz; or ascii-all/ascii)
    root/trainset.txt, testset_v.txt,              the IAM-OnDB-t1 split files, one form id per line
    testset_f.txt, testset_t.txt                   (in root or in one sub-folder of it)

A line file is ``<WhiteboardCaptureSession>`` → ``<StrokeSet>`` → ``<Stroke>`` → ``<Point x=".." y=".."
time=".."/>``.  The transcription of line ``k`` (file suffix ``-0k``, counted from 1) is the k-th non-blank
line after the ``CSR:`` line of the form's ascii file.

Conversion: y grows downwards on the whiteboard and is flipped; each line is translated so that its first
point is at the origin (row 0 of the offsets is ``(0, 0)``); coordinates are integers, so offsets are exact.
``writer`` is ``None`` (line files do not name the writer) and ``source`` is the line file's name.

Splits (Graves 2013, §4; also the Viehmann notebook): ``"train"`` = trainset + testset_f + testset_t,
``"valid"`` = testset_v; each official file can also be named on its own (``"trainset"``, ``"testset_v"``,
``"testset_f"``, ``"testset_t"``), and ``"all"`` takes every line found without reading split files.

Coordinates too large for float32 offsets (finite in the file, but beyond ±3.4e38 once differenced) make
the file malformed, not an outlier.

Cleaning: the known broken lines ``a08-551z-08`` and ``a08-551z-09`` are skipped, and lines with any pen
move (|dx| or |dy|) larger than ``max_offset`` = 1000 units are dropped as outliers.  The returned list has a
``report`` attribute (:class:`IAMReport`) that counts and names everything skipped; a summary is also
logged at INFO level.

XML is parsed with ``defusedxml`` and document type declarations are refused, so a malicious file (entity
expansion, external entities) raises :class:`~handwriting.errors.DataError` naming it instead of hanging.
With ``strict=True`` (the default) malformed files and missing transcriptions are errors; with
``strict=False`` those lines are skipped and counted in the report.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np

from ..errors import DataError
from ..strokes import Sample, to_offsets

__all__ = [
    "BROKEN_LINES",
    "MAX_OFFSET",
    "SPLITS",
    "SPLIT_FILES",
    "IAMReport",
    "IAMSamples",
    "load_iam",
    "read_line_strokes",
    "read_transcription",
    "read_split",
]

log = logging.getLogger(__name__)

#: Lines known to be broken (Graves' data; listed in the Viehmann notebook).
BROKEN_LINES = frozenset({"a08-551z-08", "a08-551z-09"})

#: Lines with a pen move larger than this (IAM units, per axis) are dropped as outliers.
MAX_OFFSET = 1000.0

#: The official IAM-OnDB-t1 split files.
SPLIT_FILES = {
    "trainset": "trainset.txt",
    "testset_v": "testset_v.txt",
    "testset_f": "testset_f.txt",
    "testset_t": "testset_t.txt",
}

#: Split name -> official split files it joins (Graves: train on train + f + t, validate on v).
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("trainset", "testset_f", "testset_t"),
    "valid": ("testset_v",),
    **{name: (name,) for name in SPLIT_FILES},
    "all": (),
}

_FORM_RE = re.compile(r"^([a-z0-9]+)-(\d+)([a-z]*)$")
_LINE_RE = re.compile(r"^(([a-z0-9]+)-(\d+)[a-z]*)-(\d+)$")


@dataclass
class IAMReport:
    """What :func:`load_iam` loaded and what it left out (line ids), for the record."""

    root: str
    split: str
    forms: int = 0
    loaded: int = 0
    skipped_broken: list[str] = field(default_factory=list)
    dropped_outliers: list[str] = field(default_factory=list)
    missing_text: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    forms_without_strokes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"IAM-OnDB {self.split}: {self.loaded} lines from {self.forms} forms"]
        for label, items in (
            ("known broken lines skipped", self.skipped_broken),
            ("outliers dropped (a pen move > max_offset)", self.dropped_outliers),
            ("lines without transcription skipped", self.missing_text),
            ("malformed files skipped", self.malformed),
            ("empty lines skipped", self.empty),
            ("forms without line files", self.forms_without_strokes),
        ):
            if items:
                parts.append(f"{len(items)} {label}")
        return "; ".join(parts)

    __str__ = summary


class IAMSamples(list):
    """A ``list[Sample]`` with the :class:`IAMReport` of how it was loaded as ``.report``."""

    report: IAMReport


# ----------------------------------------------------------------------------------------------------------
# the pieces


def _find_dir(root: Path, name: str) -> Path | None:
    for cand in (root / name, root / f"{name}-all" / name, root / f"{name}-all"):
        if cand.is_dir():
            return cand
    return None


def _layout(root: Path) -> tuple[Path, Path]:
    if not root.is_dir():
        raise DataError(
            f"{root}: IAM-OnDB folder not found; unpack lineStrokes-all.tar.gz and ascii-all.tar.gz into one "
            "folder and pass it as root (see data/README.md)"
        )
    strokes, ascii_ = _find_dir(root, "lineStrokes"), _find_dir(root, "ascii")
    missing = [n for n, d in (("lineStrokes", strokes), ("ascii", ascii_)) if d is None]
    if missing:
        raise DataError(
            f"{root}: no {' or '.join(f'{m}/' for m in missing)} folder inside; unpack "
            f"{' and '.join(f'{m}-all.tar.gz' for m in missing)} into {root} (see data/README.md)"
        )
    return strokes, ascii_  # type: ignore[return-value]


def _form_dirs(form: str) -> tuple[str, str]:
    """``a01-000u`` -> (``a01``, ``a01-000``): the folders a form's files live in."""
    m = _FORM_RE.match(form)
    if not m:
        raise ValueError(form)
    return m.group(1), f"{m.group(1)}-{m.group(2)}"


def read_split(path: str | os.PathLike) -> list[str]:
    """Form ids (or line ids) listed in an official split file, in order, without blanks and duplicates."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the split file ({exc.strerror or exc})") from exc
    out: dict[str, None] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not (_FORM_RE.match(entry) or _LINE_RE.match(entry)):
            raise DataError(
                f"{path}, line {lineno}: {entry!r} is not an IAM-OnDB form id such as 'a01-000u'; "
                "is this an IAM-OnDB-t1 split file?"
            )
        out[entry] = None
    return list(out)


def _find_split_file(root: Path, name: str) -> Path:
    fname = SPLIT_FILES[name]
    cands = [root / fname] + sorted(p / fname for p in root.iterdir() if p.is_dir())
    for c in cands:
        if c.is_file():
            return c
    raise DataError(
        f"{root}: split file {fname} not found (looked in {root} and its sub-folders); download the IAM-OnDB-t1 "
        f"task files (trainset.txt, testset_v.txt, testset_f.txt, testset_t.txt) into {root}, or use split='all'"
    )


def read_transcription(path: str | os.PathLike) -> list[str]:
    """The text lines of a form's ascii file: the non-blank lines after ``CSR:``, in order."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "CSR:")
    except StopIteration:
        raise DataError(f"{path}: no 'CSR:' line, so no transcription; is this an IAM-OnDB ascii file?") from None
    return [line.strip() for line in lines[start + 1 :] if line.strip()]


def read_line_strokes(path: str | os.PathLike) -> np.ndarray:
    """Parse one IAM-OnDB line file into absolute ``(N, 3)`` float64 rows ``(x, y, end_of_stroke)``.

    Coordinates are as in the file (y grows downwards); strokes without points are ignored.  An empty line
    returns a ``(0, 3)`` array.  Any malformed or unsafe XML raises :class:`DataError` naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise DataError(
            f"{path}: refused unsafe XML ({type(exc).__name__}: {exc}); IAM-OnDB line files have no DTD or "
            "entities — replace the file with the original from lineStrokes-all.tar.gz"
        ) from exc
    except ParseError as exc:
        line, col = getattr(exc, "position", (None, None))
        raise DataError(
            f"{path}: malformed XML at line {line}, column {col} ({exc}); replace the file with the original "
            "from lineStrokes-all.tar.gz (or load with strict=False to skip it)"
        ) from exc
    xs: list[str | None] = []
    ys: list[str | None] = []
    ends: list[int] = []
    for stroke in root.iter("Stroke"):
        n0 = len(xs)
        for p in stroke.iter("Point"):
            xs.append(p.get("x"))
            ys.append(p.get("y"))
        if len(xs) > n0:
            ends.append(len(xs) - 1)
    if not xs:
        if root.find(".//StrokeSet") is None:
            raise DataError(f"{path}: no <StrokeSet> element; is this an IAM-OnDB lineStrokes file?")
        return np.zeros((0, 3))
    try:
        if None in xs or None in ys:
            raise ValueError
        pts = np.empty((len(xs), 3))
        pts[:, 0] = np.array(xs, dtype=np.float64)
        pts[:, 1] = np.array(ys, dtype=np.float64)
        if not np.isfinite(pts[:, :2]).all():
            raise ValueError
    except ValueError:
        k = next(i for i, (x, y) in enumerate(zip(xs, ys)) if not (_finite(x) and _finite(y)))
        s = int(np.searchsorted(np.asarray(ends), k))
        first = ends[s - 1] + 1 if s > 0 else 0
        raise DataError(
            f"{path}: stroke {s}, point {k - first}: x={xs[k]!r}, y={ys[k]!r} is not a pair of finite numbers; "
            "replace the file with the original from lineStrokes-all.tar.gz (or load with strict=False)"
        ) from None
    pts[:, 2] = 0.0
    pts[ends, 2] = 1.0
    return pts


def _finite(v: str | None) -> bool:
    try:
        return v is not None and np.isfinite(float(v))
    except ValueError:
        return False


# ----------------------------------------------------------------------------------------------------------
# the loader


def load_iam(
    root: str | os.PathLike,
    split: str = "train",
    *,
    max_offset: float | None = MAX_OFFSET,
    skip: Iterable[str] = BROKEN_LINES,
    strict: bool = True,
    limit: int | None = None,
    progress: bool | None = None,
) -> IAMSamples:
    """Load the text lines of IAM-OnDB split ``split`` from ``root`` as samples (see the module docstring).

    ``max_offset=None`` keeps outliers; ``skip`` lists line ids to leave out; ``limit`` stops after that many
    lines; ``progress=None`` shows a progress bar on terminals only.  The result's ``.report`` says what was
    skipped and why.
    """
    root = Path(root).expanduser()
    if split not in SPLITS:
        raise ValueError(f"load_iam: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if limit is not None and limit < 0:
        raise ValueError(f"load_iam: limit must be >= 0 or None, got {limit}")
    strokes_dir, ascii_dir = _layout(root)
    skip = frozenset(skip)
    report = IAMReport(root=str(root), split=split)

    # which lines: form id -> None (all its lines) or the set of line ids listed
    wanted: dict[str, set[str] | None] = {}
    if SPLITS[split]:
        for name in SPLITS[split]:
            for entry in read_split(_find_split_file(root, name)):
                m = _LINE_RE.match(entry)
                if m:
                    form = m.group(1)
                    if form not in wanted:
                        wanted[form] = set()
                    if wanted[form] is not None:
                        wanted[form].add(entry)  # type: ignore[union-attr]
                else:
                    wanted[entry] = None
    else:
        for p in sorted(strokes_dir.rglob("*.xml")):
            m = _LINE_RE.match(p.stem)
            if m:
                wanted.setdefault(m.group(1), None)

    from tqdm.auto import tqdm

    out = IAMSamples()
    out.report = report
    disable = None if progress is None else not progress  # None: a bar on terminals only
    for form in tqdm(wanted, desc=f"IAM-OnDB {split}", unit="form", disable=disable):
        if limit is not None and len(out) >= limit:
            break
        report.forms += 1
        group, sub = _form_dirs(form)
        line_re = re.compile(rf"^{re.escape(form)}-(\d+)\.xml$")
        form_dir = strokes_dir / group / sub
        listing = form_dir.iterdir() if form_dir.is_dir() else ()
        files = sorted((int(m.group(1)), p) for p in listing if (m := line_re.match(p.name)))
        only = wanted[form]
        if only is not None:
            files = [(k, p) for k, p in files if p.stem in only]
        if not files:
            report.forms_without_strokes.append(form)
            continue
        ascii_path = ascii_dir / group / sub / f"{form}.txt"
        texts: list[str] | None = None
        for k, path in files:
            if limit is not None and len(out) >= limit:
                break
            line_id = path.stem
            if line_id in skip:
                report.skipped_broken.append(line_id)
                continue
            if texts is None:
                texts = _transcription_or_none(ascii_path, strict)
            if not texts or not 1 <= k <= len(texts):
                if strict:
                    if ascii_path.is_file():
                        why = f"{ascii_path} has {len(texts or [])} lines after 'CSR:' but this is line {k}"
                    else:
                        why = f"expected {ascii_path}"
                    raise DataError(
                        f"{path}: no transcription: {why}; unpack ascii-all.tar.gz into the same folder as "
                        "lineStrokes, or load with strict=False to skip lines without text"
                    )
                report.missing_text.append(line_id)
                continue
            try:
                pts = read_line_strokes(path)
            except DataError:
                if strict:
                    raise
                report.malformed.append(line_id)
                continue
            if len(pts) == 0:
                report.empty.append(line_id)
                continue
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, naming the point
                line = pts * (1.0, -1.0, 1.0)  # y grows upwards; pts keeps the file's values for the message
                line[:, :2] -= line[0, :2]
                moves = to_offsets(line)
                offsets = moves.astype(np.float32)
            overflow = ~np.isfinite(offsets).all(axis=1)
            if overflow.any():  # a corrupt point, not an outlier: too large to be drawn at all
                if strict:
                    raise _overflow_error(path, pts, int(np.argmax(overflow)))
                report.malformed.append(line_id)
                continue
            if max_offset is not None and len(pts) > 1 and np.abs(moves[1:, :2]).max() > max_offset:
                report.dropped_outliers.append(line_id)
                continue
            out.append(Sample(offsets, text=texts[k - 1], writer=None, source=path.name))
    report.loaded = len(out)
    if not out and not (limit == 0):
        raise DataError(
            f"{root}: no usable lines for split {split!r} ({report.summary()}); check that lineStrokes/ holds the "
            "unpacked lineStrokes-all.tar.gz and that the split files belong to IAM-OnDB"
        )
    log.info(report.summary())
    return out


def _overflow_error(path: Path, pts: np.ndarray, k: int) -> DataError:
    ends = np.flatnonzero(pts[:k, 2])
    first = int(ends[-1]) + 1 if len(ends) else 0
    return DataError(
        f"{path}: stroke {len(ends)}, point {k - first}: x={pts[k, 0]:g}, y={pts[k, 1]:g} is too large: it or the "
        f"move from the previous point is beyond float32's range (±{np.finfo(np.float32).max:.2g}); replace the "
        "file with the original from lineStrokes-all.tar.gz (or load with strict=False to skip it)"
    )


def _transcription_or_none(ascii_path: Path, strict: bool) -> list[str] | None:
    if not ascii_path.is_file():
        return None  # reported per line by the caller
    try:
        return read_transcription(ascii_path)
    except (DataError, OSError) as exc:
        if strict:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"{ascii_path}: cannot read the transcription ({exc})") from exc
        return None
