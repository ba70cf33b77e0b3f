"""Write a text file as a page of handwriting: ``handwriting page input.txt -o page.svg``.

The file is read as UTF-8 and checked against the model's alphabet first (every character it cannot write is
listed with its line:column, so you can fix them all at once); the text is wrapped into lines of at most
``--max-chars`` characters (blank lines separate paragraphs), the lines are generated in batches of
``--batch-size`` with a progress bar, laid out top to bottom and saved in the format the output's suffix
names (.svg, .png, .gif, .gcode/.nc/.ngc, .html) — atomically: on any error no half-written file is left.

``--model synthetic`` (or ``synthetic:NAME`` with a writer of
:data:`handwriting.datasets.synthetic.WRITERS`) draws the page with the synthetic writer instead of a model:
no trained model needed, handy to try the layout and the output formats.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import DataError, HandwritingError
from .strokes import Sample

__all__ = ["configure", "run", "read_text", "check_alphabet", "write_page", "Page", "EPILOG"]

EPILOG = """examples:
  handwriting page letter.txt -o letter.svg
  handwriting page letter.txt -o letter.png --bias 2 --seed 7 --max-chars 40
  handwriting page poem.txt -o poem.gcode --width 180            (G-code for a pen plotter, 180 mm wide)
  handwriting page notes.txt -o notes.svg --prime my_hand.json   (in your own style)
  handwriting page notes.txt -o notes.svg --model synthetic:hasty   (no model needed: the synthetic writer)
  cat notes.txt | handwriting page - -o notes.svg

Characters the model cannot write are listed with their line:column; fix them (or pass --unknown replace)
and run again.  Blank lines in the input separate paragraphs.
"""

SYNTHETIC = "synthetic"
MAX_LISTED = 12  # bad characters named in the error message


# ----------------------------------------------------------------------------------------------------------
# input


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file (``-``: standard input); errors name the file, the position and the fix."""
    if str(path) == "-":
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8")
        name = "<stdin>"
    else:
        p = Path(path)
        name = str(p)
        if p.is_dir():
            raise DataError(f"{p}: is a directory; give the text file to write")
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{p}: no such file; check the path of the text to write") from None
        except OSError as exc:
            raise DataError(f"{p}: cannot read it ({exc.strerror or exc}); check the path and its permissions") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise DataError(
            f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, column {col}); "
            "save the file as UTF-8"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataError(f"{name}: no text to write (the file is empty); put some text in it")
    return text


def _chars(alphabet: Any) -> str | None:
    if alphabet is None:
        return None
    if isinstance(alphabet, str):
        return alphabet
    chars = getattr(alphabet, "chars", None)
    return "".join(chars) if chars is not None else "".join(alphabet)


def check_alphabet(text: str, alphabet: str, name: str = "input", replace: bool = False) -> str:
    """Raise :class:`DataError` listing every character of ``text`` outside ``alphabet`` as ``'c' at
    line:column`` (tabs count as spaces; newlines separate lines).  With ``replace`` they become ``?`` (or a
    space, or the alphabet's first character) instead."""
    allowed = set(alphabet)
    bad: list[tuple[int, int, str]] = []
    for ln, line in enumerate(text.split("\n"), start=1):
        for col, c in enumerate(line, start=1):
            if (" " if c == "\t" else c) not in allowed:
                bad.append((ln, col, c))
    if not bad:
        return text
    if replace:
        rep = next((c for c in "? " if c in allowed), alphabet[0])
        return "".join(c if c == "\n" or (" " if c == "\t" else c) in allowed else rep for c in text)
    shown = ", ".join(f"{c!r} at {ln}:{col}" for ln, col, c in bad[:MAX_LISTED])
    more = f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    kinds = sorted({c for _, _, c in bad})
    raise DataError(
        f"{name}: {len(bad)} character{'s' if len(bad) != 1 else ''} the model cannot write "
        f"({''.join(kinds)!r}): {shown}{more}; remove or replace them, or pass --unknown replace "
        f"(the model writes {alphabet!r})"
    )


# ----------------------------------------------------------------------------------------------------------
# generation


@dataclass
class Page:
    """A written page: the laid-out ``sample``, each line's offsets, and the median line height (data units)."""

    sample: Sample
    lines: list
    line_height: float


@dataclass
class _Backend:
    """What writes the lines: a model through write(), or the synthetic writer."""

    model: Any = None  # an nn.Module (resolved) or None for the synthetic writer
    writer: str | None = None  # synthetic writer name
    alphabet: str | None = None
    name: str = ""


def _backend(spec: str | None, device: str | None = None) -> _Backend:
    if spec is not None and (spec == SYNTHETIC or spec.startswith(SYNTHETIC + ":")):
        from .datasets.synthetic import SYNTHETIC_ALPHABET, WRITERS

        writer = spec.partition(":")[2] or "neat"
        if writer not in WRITERS:
            raise DataError(f"--model {spec}: no synthetic writer {writer!r}; use one of {', '.join(WRITERS)}")
        return _Backend(None, writer, SYNTHETIC_ALPHABET, spec)
    from .generate import resolve_model

    model = resolve_model(spec, device)
    return _Backend(model, None, _chars(getattr(model, "alphabet", None)), spec or "default")


def _write_batch(backend: _Backend, lines: Sequence[str], bias: float, prime: Sample | None, seed: int) -> list[Sample]:
    """One batch of (non-blank) lines → one Sample per line, in data units."""
    if backend.model is None:
        from .styles import Style
        from .widgets import synthetic_generator

        style = Style(backend.writer or "", "synthetic", writer=backend.writer)
        return [synthetic_generator(line, bias, style, seed + i) for i, line in enumerate(lines)]
    from .generate import write

    w = write(
        "\n".join(lines), model=backend.model, bias=bias, prime=prime, seed=seed,
        max_line_chars=max(len(ln) for ln in lines),
    )  # fmt: skip
    if len(w.lines) != len(lines):  # pragma: no cover - write() keeps our lines as they are
        raise HandwritingError(f"write() returned {len(w.lines)} lines for {len(lines)}")
    return list(w.lines)


def write_page(
    text: str,
    backend: _Backend,
    *,
    bias: float = 0.75,
    seed: int = 0,
    prime: Sample | None = None,
    max_chars: int = 50,
    batch_size: int = 8,
    line_gap: float = 0.6,
    progress: Callable[[int], None] | None = None,
) -> Page:
    """Wrap ``text``, write its lines in batches (``progress(n_lines_done)`` after each) and lay them out.
    A line longer than the model writes in one go (:func:`~handwriting.generate.default_line_chars`) is
    written in pieces, joined side by side."""
    from .generate import MAX_SEED, default_line_chars
    from .layout import assemble_lines, layout_lines, line_pieces, wrap_text

    piece_chars = max_chars
    if backend.model is not None:  # no more than fits the model's context or its training lines
        piece_chars = min(max_chars, default_line_chars(backend.model, None if prime is None else (prime.offsets, prime.text)))
    lines = wrap_text(text, max_chars)
    planned = [line_pieces(ln, piece_chars) for ln in lines]
    todo = [(i, p) for i, (ps, _) in enumerate(planned) for p in ps]
    if not todo:
        raise DataError("no text to write")
    written: list[np.ndarray] = []
    last = {i: k for k, (i, _) in enumerate(todo)}  # the index of every line's last piece
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        batch_seed = (seed + start) % (MAX_SEED + 1)  # a seed near the top of the range wraps around
        written += [s.offsets for s in _write_batch(backend, [p for _, p in chunk], bias, prime, batch_seed)]
        if progress is not None:
            progress(sum(last[i] == start + k for k, (i, _) in enumerate(chunk)))  # lines finished
    out = assemble_lines(planned, written)
    offsets = layout_lines(out, line_gap)
    heights = [float(np.ptp(np.cumsum(o[:, 1]))) for o in out if o is not None]
    heights = [h for h in heights if h > 0]
    page = Sample(offsets, text="\n".join(lines), writer=backend.name, source="page")
    return Page(page, [o for o in out if o is not None], float(np.median(heights)) if heights else 1.0)


# ----------------------------------------------------------------------------------------------------------
# the command


def configure(parser) -> None:
    parser.add_argument("input", help="the text file to write (UTF-8; '-' reads standard input)")
    parser.add_argument("--output", "-o", required=True,
                        help="output file; its suffix picks the format: .svg .png .gif .gcode .nc .ngc .html")
    parser.add_argument("--model", "-m", default=None,
                        help="pretrained name, checkpoint path, or synthetic[:WRITER] (default: the default pretrained model)")
    parser.add_argument("--bias", "-b", type=float, default=0.5, help="sampling bias: 0 = as trained, higher = neater (default 0.5, as write())")
    parser.add_argument("--seed", "-s", type=int, default=0, help="random seed (same seed, same page; default 0)")
    parser.add_argument("--prime", default=None, metavar="FILE", help="write in the style of a sample from a handwriting-samples JSON file")
    parser.add_argument("--prime-index", type=int, default=0, help="which sample of the --prime file (default 0)")
    parser.add_argument("--max-chars", type=int, default=50, help="wrap lines at this many characters (default 50)")
    parser.add_argument("--batch-size", type=int, default=8, help="lines generated together (default 8)")
    parser.add_argument("--line-gap", type=float, default=0.6, help="space between lines, in line heights (default 0.6)")
    parser.add_argument("--width", type=float, default=None, help="page width in pixels (G-code: millimetres)")
    parser.add_argument("--stroke-width", type=float, default=None, help="pen width in pixels (svg/png/gif)")
    parser.add_argument("--color", default=None, help="ink colour (svg/png/gif/html), e.g. navy or #1a1a80")
    parser.add_argument("--unknown", choices=("error", "replace"), default="error",
                        help="characters the model cannot write: stop with a list (default) or replace them")
    parser.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


#: how tall one line of writing is drawn when no --width is given (pixels; G-code: millimetres)
LINE_SIZE = {"svg": 64.0, "png": 48.0, "gif": 48.0, "gcode": 8.0}


def _save_options(fmt: str, args, line_height: float) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.width is None and fmt in LINE_SIZE:  # the same writing size whatever the number of lines
        options["scale"] = LINE_SIZE[fmt] / max(line_height, 1e-9)
    if args.width is not None:
        if not args.width > 0:
            raise HandwritingError(f"--width must be > 0, got {args.width}")
        if fmt == "gcode":
            options["width_mm"] = float(args.width)
        elif fmt != "html":
            options["width"] = int(round(args.width))
    if args.stroke_width is not None:
        if not args.stroke_width > 0:
            raise HandwritingError(f"--stroke-width must be > 0, got {args.stroke_width}")
        if fmt == "svg":
            options["stroke_width"] = args.stroke_width
        elif fmt in ("png", "gif"):
            options["line_width"] = args.stroke_width
    if args.color is not None and fmt != "gcode":
        from .render import _rgba

        _rgba(args.color, "--color")
        options["color"] = args.color
    return options


def run(args) -> int:
    from .devices import resolve_device
    from .export import check_output, save
    from .generate import BIAS_HINT, LINE_GAP_HINT, check_number, check_seed, load_prime

    out = Path(args.output)
    fmt = check_output(out)  # this and the options are checked before the (slow) writing
    for name, value, low in (("--max-chars", args.max_chars, 1), ("--batch-size", args.batch_size, 1)):
        if value < low:
            raise HandwritingError(f"{name} must be at least {low}, got {value}")
    check_number("--bias", args.bias, 0, hint=BIAS_HINT)
    check_seed("--seed", args.seed)
    check_number("--line-gap", args.line_gap, 0, hint=LINE_GAP_HINT)
    resolve_device(args.device or "cpu")
    _save_options(fmt, args, 1.0)
    name = "<stdin>" if args.input == "-" else args.input
    text = read_text(args.input)
    prime = None
    if args.prime:
        prime = load_prime(Path(args.prime), args.prime_index)
    backend = _backend(args.model, args.device)
    if backend.alphabet is not None:
        text = check_alphabet(text, backend.alphabet, name, replace=args.unknown == "replace")
        if prime is not None:
            check_alphabet(prime.text, backend.alphabet, f"{args.prime} sample {args.prime_index} (its text)")

    from tqdm import tqdm

    from .layout import wrap_text

    n_lines = sum(1 for ln in wrap_text(text, args.max_chars) if ln)
    with tqdm(total=n_lines, unit="line", desc="writing", disable=args.quiet, file=sys.stderr) as bar:
        page = write_page(
            text, backend, bias=args.bias, seed=args.seed, prime=prime, max_chars=args.max_chars,
            batch_size=args.batch_size, line_gap=args.line_gap, progress=bar.update,
        )  # fmt: skip
    path = save(page.sample, out, **_save_options(fmt, args, page.line_height))
    print(f"wrote {path} ({n_lines} line{'s' if n_lines != 1 else ''}, seed {args.seed})")
    return 0
