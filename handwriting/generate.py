"""Write text in handwriting with a trained model: :func:`write` and the ``handwriting write`` command.

``write("hello world")`` loads the default pretrained model, wraps the text into lines and the lines into
the pieces the model writes in one go (:mod:`handwriting.layout`), writes every piece of every requested
sample in one batch through the model's writing interface, joins the pieces of each line and lays the lines
out top to bottom.  The result is a :class:`Written` — a :class:`~handwriting.strokes.Sample` (``offsets``,
``text``) that also keeps each piece, the seed that made it and, on request, the model's internals (the
attention window φ, κ, mixture parameters, or the transformer's cross-attention) for plotting.

Models it drives: any model with the writing interface, ``write_rows``
(:class:`~handwriting.models.base.TextWriter`: character ids, one bias per row, a generator and an optional
prime in; offsets in data units out) — Graves' synthesis network (bias as in Graves §5.4, priming as in
§5.5), the cursive transformer (the bias trims the unlikely tail of each token's distribution: min-p
0.2 · bias / (1 + bias), :func:`~handwriting.models.transformer.bias_min_p`) and the
MDN transformer.  ``wrap_text``, ``line_pieces``, ``join_pieces``, ``assemble_lines`` and ``layout_lines``
are :mod:`handwriting.layout`'s, importable from here too.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import ArgumentError, DataError, HandwritingError
from .layout import assemble_lines, join_pieces, layout_lines, line_pieces, wrap_text
from .strokes import Sample, check_offsets, downsample

__all__ = ["Written", "write", "resolve_model", "wrap_text", "line_pieces", "join_pieces", "assemble_lines",
           "layout_lines", "check_number", "check_seed", "MAX_SEED", "configure", "run", "EPILOG"]

DEFAULT_MAX_LINE_CHARS = 50

EPILOG = """examples:
  handwriting write "hello world" -o hello.svg
  handwriting write "The quick brown fox" --bias 2 --seed 7 -o fox.png
  handwriting write "line one\\nline two" --model runs/graves/best -o lines.svg
  handwriting write "in my style" --prime my_hand.json -o mine.gif      (prime with your own sample)
  handwriting write "in my hand" --style mine.style -o mine.svg         (a style file: `handwriting style fit`)
  echo "from stdin" | handwriting write - -o out.gcode --width 120      (G-code: width in mm)

--model takes a pretrained name (see `handwriting models`) or a checkpoint path (runs/x/best). Bias 0
samples the model as trained; higher values write more neatly (Graves 2013, §5.4). The same --seed gives
the same handwriting.
"""


@dataclass
class Written(Sample):
    """Generated handwriting: the laid-out ``offsets`` and ``text`` (lines joined with ``\\n``) of a
    :class:`~handwriting.strokes.Sample`, plus ``lines`` (one Sample per piece the model wrote in one go, in
    data units: a whole line, or part of one where the line was longer than the model's ``max_line_chars``),
    ``seed``, ``bias``, ``stopped`` (per piece: did the model end it itself, rather than the length guard)
    and ``internals`` (per piece, with ``return_internals=True``)."""

    lines: list = field(default_factory=list)
    seed: int | None = None
    bias: float = 0.0
    stopped: list = field(default_factory=list)
    internals: list | None = None
    read: list | None = None  # per piece, with candidates > 1: what the reranker read in the kept version


# ----------------------------------------------------------------------------------------------------------
# arguments

MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes 64-bit seeds
UNKNOWN = ("error", "replace")  # the values of write(unknown=...) and --unknown
BIAS_HINT = "; 0 samples the model as trained, higher values write more neatly (e.g. 0.5 to 2)"
LINE_GAP_HINT = "; it is the space between lines, in line heights (default 0.6)"


def check_number(name: str, value: Any, low: float, high: float | None = None, *, integer: bool = False,
                 hint: str = "") -> Any:
    """``value`` as a finite float (a whole number with ``integer``) in ``[low, high]``; otherwise an
    :class:`~handwriting.errors.ArgumentError` naming ``name``, the value and the allowed range, plus ``hint``."""
    if integer:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and value >= low and (high is None or value <= high)):
        bounds = f">= {low}" if high is None else f"from {low} to {high}"
        kind = "a whole number" if integer else "a finite number"
        raise ArgumentError(f"{name} must be {bounds} ({kind}), got {value!r}{hint}")
    return int(value) if integer else float(value)


def check_seed(name: str, seed: Any) -> int:
    """A seed for :func:`write`: a whole number from 0 to :data:`MAX_SEED`, else an ArgumentError naming ``name``."""
    return check_number(name, seed, 0, MAX_SEED, integer=True, hint="; the same seed gives the same handwriting")


# ----------------------------------------------------------------------------------------------------------
# models

def resolve_model(model: Any = None, device: str | None = None):
    """``None`` → the default pretrained model; a name → :func:`~handwriting.pretrained.load_pretrained`;
    a path (``runs/x/best``, ``.safetensors`` or ``.json``) → :func:`~handwriting.checkpoint.load_model`;
    a module → itself.  Loaded models are cached (by path and modification time).  ``device`` goes through
    :func:`~handwriting.devices.resolve_device` (default ``cpu``)."""
    import torch

    from .devices import resolve_device

    device = str(resolve_device(device or "cpu"))  # a DeviceError for unknown devices, or CUDA without a GPU
    if isinstance(model, torch.nn.Module):
        return model
    from . import checkpoint as ckpt
    from . import pretrained

    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise ArgumentError(f"model={model!r}: give a pretrained name (handwriting models lists them), a checkpoint "
                            "path such as runs/x/best, or a model")
    name = pretrained.DEFAULT_MODEL if model is None else os.fspath(model)
    if Path(name).is_dir():  # a training run's folder: its models are files inside it
        inside = [n for n in ("best", "last") if ckpt.model_paths(Path(name) / n)[0].is_file()]
        hint = f"; its models: {', '.join(str(Path(name) / n) for n in inside)}" if inside else ""
        raise ckpt.CheckpointError(f"{name}: is a folder, not a checkpoint; name a model in it, e.g. "
                                   f"{Path(name) / 'best'}{hint}")
    weights, meta_path = ckpt.model_paths(name)
    is_path = any(c in name for c in "/\\") or name.endswith((".safetensors", ".json")) or weights.is_file()
    if is_path:
        if not weights.is_file():
            raise ckpt.CheckpointError(f"{weights}: no such checkpoint; train one with `handwriting train ...` or fix the path")
        return ckpt.cached_load("model", weights, device, lambda: ckpt.load_model(weights, device=device)[0])
    try:
        w = pretrained.find_pretrained(name)
    except pretrained.PretrainedError as exc:
        if model is None:
            raise pretrained.PretrainedError(
                f"write() with no model uses the pretrained model {name!r}, which is not installed. {exc}"
            ) from None
        raise
    return ckpt.cached_load("pretrained", w, device, lambda: pretrained.load_pretrained(name, device=device))


def _styled_model(style: Any, model: Any, device: str | None):
    """The base model of ``style`` (or ``model``, which must be that base) with the style applied."""
    from .style_file import StyleFile, load_style

    if not isinstance(style, (StyleFile, str, os.PathLike)):
        raise ArgumentError(f"style={style!r}: give a style file's path (handwriting style fit makes one) or a StyleFile")
    base = None if model is None else resolve_model(model, device)
    return load_style(style, model=base, device=device or "cpu")


def _alphabet(model):
    alphabet = getattr(model, "alphabet", None)
    if alphabet is None:
        raise HandwritingError(
            f"{type(model).__name__} has no alphabet: set model.alphabet = Alphabet(chars) (the characters it "
            "was trained on), or load it from a checkpoint, which stores it"
        )
    if isinstance(alphabet, str):
        from .datasets.torch_data import Alphabet

        alphabet = Alphabet(alphabet)
    return alphabet


def _check_writer(model) -> None:
    """A model that :func:`write` can drive implements the writing interface,
    :class:`~handwriting.models.base.TextWriter` (``write_rows``)."""
    if not callable(getattr(model, "write_rows", None)):
        raise HandwritingError(
            f"{type(model).__name__} writes no text: it has no write_rows(...), the writing interface of the synthesis "
            "network and the transformers (docs/INTERFACES.md); draw from an unconditional model such as the "
            "prediction network with model.sample(...) instead, or use a synthesis model"
        )


# ----------------------------------------------------------------------------------------------------------
# text, line lengths and priming (wrapping, pieces and layout: handwriting.layout)


def _check_chars(lines: list[str], alphabet, unknown: str, what: str = "the text") -> list[str]:
    bad = sorted({c for ln in lines for c in ln if c not in alphabet})
    if not bad:
        return lines
    if unknown == "replace":
        rep = alphabet.replacement if getattr(alphabet, "replacement", None) else next((c for c in "? " if c in alphabet), None)
        if rep is None:
            rep = alphabet.chars[0]
        return ["".join(c if c in alphabet else rep for c in ln) for ln in lines]
    chars = "".join(getattr(alphabet, "chars", ""))
    where = {}
    for i, ln in enumerate(lines):
        for k, c in enumerate(ln):
            if c not in alphabet and c not in where:
                where[c] = f"line {i + 1}, character {k + 1}" if len(lines) > 1 else f"character {k + 1}"
    shown = ", ".join(f"{c!r} ({where[c]})" for c in bad)
    raise DataError(
        f"the model cannot write {len(bad)} character(s) of {what}: {shown}; it knows {len(chars)} characters "
        f"({chars!r}). Remove or replace them, or pass unknown='replace' (--unknown replace)"
    )


BIGBANK_POINTS_PER_CHAR = 20.8  # bigbank after removing 65% of each stroke's interior points (tokenizer_report)


def model_points_per_char(model) -> float | None:
    """How densely the model's training data was sampled (points per character), if known: Graves' networks
    from ``kappa_scale`` (the trainer sets it to characters per point), else the ``points_per_char`` the
    trainer recorded, else bigbank's density after the transformers' downsampling for models trained on it."""
    ks = getattr(getattr(model, "config", None), "kappa_scale", None)
    if ks:
        return 1.0 / float(ks)
    training = (getattr(model, "meta", None) or {}).get("training") or {}
    if training.get("points_per_char"):
        return float(training["points_per_char"])
    if training.get("data") == "bigbank":
        return BIGBANK_POINTS_PER_CHAR
    return None


#: 90th percentile of the length of bigbank's words (characters; mean 5.3): the longest lines a model trained on
#: lines stitched from up to N bigbank words saw often hold about N × 8 characters and N - 1 spaces.
BIGBANK_WORD_CHARS_P90 = 8


def trained_line_chars(model) -> int | None:
    """About the longest line the model was trained on, if known: for lines stitched from at most N bigbank
    words (``--words-per-line``), N words of bigbank's 90th-percentile length with spaces between (26 for
    N = 3; 99% of such training lines are at most 25 characters).  Longer lines drift and lose letters: 48
    lines of 38–50 held-out characters written by the shipped Graves network read at 40.1 / 32.8 / 30.2% CER
    (bias 0.5 / 1 / 2) when written whole, 34.6 / 29.1 / 26.0% in pieces of at most 26 characters joined
    (``python scripts/long_lines.py``)."""
    from .datasets.sources import is_cursive_data

    training = (getattr(model, "meta", None) or {}).get("training") or {}
    words = training.get("words_per_line")
    if not words or not is_cursive_data(training.get("data") or ""):  # bigbank, synthbank or both
        return None
    most = int(words[-1] if isinstance(words, (list, tuple)) else str(words).split("-")[-1])
    return most * (BIGBANK_WORD_CHARS_P90 + 1) - 1


def default_line_chars(model, prime: tuple[np.ndarray, str] | None = None) -> int:
    """The longest line ``write`` gives the model in one piece: its text length, no longer than the lines it
    was trained on (:func:`trained_line_chars`), and for the transformers no more than fits in their
    context — ``block_size`` positions (two tokens or one position per point) at the training data's points
    per character, with 60% to spare (long words of tall letters take more) — less what a priming sample takes (of the training line length, no
    more than half).  Longer lines are written in pieces and joined (:func:`join_pieces`)."""
    cfg = getattr(model, "config", None)
    n = int(getattr(cfg, "text_len", 0) or DEFAULT_MAX_LINE_CHARS)
    primed = 0 if prime is None else len(prime[1]) + 1  # the prime's text and a space share the text context
    n -= primed
    trained = trained_line_chars(model)
    if trained:  # a soft limit: with a long prime, still pieces of at least half a training line
        n = min(n, max(trained - primed, trained // 2))
    block, ppc = getattr(cfg, "block_size", None), model_points_per_char(model)
    if block and ppc:
        per_point = getattr(model, "positions_per_point", 1)  # two tokens per point for the cursive transformer
        room = block - (per_point * len(prime[0]) if prime is not None else 0)
        n = min(n, int(room / (per_point * ppc * 1.6)))
    return max(1, n)


def match_point_density(offsets: np.ndarray, text: str, model) -> np.ndarray:
    """Thin a priming sample that is sampled more densely than the model's training data (a canvas drawing,
    raw bigbank, the synthetic writer) by dropping evenly spaced interior points of its strokes: a model
    primed with 3× too many points per character continues as if writing 3× slower and often stops at once.
    Samples that are already as sparse as the training data are returned unchanged."""
    target = model_points_per_char(model)
    chars = len(text.replace(" ", ""))
    if not target or chars == 0:
        return offsets
    have = len(offsets) / chars
    if have <= 1.3 * target:
        return offsets
    return downsample(offsets, min(0.9, 1.0 - target / have))


def _prime_lines(prime: Any) -> list[tuple[np.ndarray, str]]:
    """A prime — one sample or a list of samples (lines of one hand) — as ``(offsets, text)`` per line."""
    if isinstance(prime, (list, tuple)) and prime and all(isinstance(p, Sample) for p in prime):
        return [_prime_parts(p) for p in prime]
    return [_prime_parts(prime)]


def _prime_parts(prime: Any) -> tuple[np.ndarray, str]:
    if isinstance(prime, Sample):
        off, text = prime.offsets, prime.text
    elif isinstance(prime, (tuple, list)) and len(prime) == 2:
        off, text = prime
    else:
        raise DataError("prime must be a Sample, a pair (offsets, text) or a list of Samples (lines of one hand)")
    off = check_offsets(off, "prime")
    if not isinstance(text, str) or not text.strip():
        raise DataError("prime: the priming sample needs its text (what it says) to prime the window")
    return off, text


# ----------------------------------------------------------------------------------------------------------
# sampling


def _start_at_zero(offsets: np.ndarray) -> np.ndarray:
    """A prime's offsets with the first point at 0, like the training data: the pen's start carries no information."""
    offsets = offsets.copy()
    offsets[0, :2] = 0.0
    return offsets


def _write_rows(model, rows, alphabet, bias_rows, generator, prime, internals, max_steps, more=()):
    """Every row of text written in one batch by the model's ``write_rows``
    (:class:`~handwriting.models.base.TextWriter`): the offsets in data units, whether the model ended each row
    itself, and with ``internals`` per row the model's internals, labelled with the row's ``text`` (primed, also
    with ``full_text``: the prime's text, a space and the row's, which the model read).  ``more``: further
    ``(offsets, text)`` lines of the prime's hand (:class:`~handwriting.models.base.Priming`)."""
    import torch

    from .models.base import Priming

    device = next(model.parameters()).device
    ids = [alphabet.encode(t) for t in rows]
    text = torch.zeros(len(rows), max(len(i) for i in ids), dtype=torch.long)
    for r, i in enumerate(ids):
        text[r, : len(i)] = torch.tensor(i, dtype=torch.long)
    priming = None
    if prime is not None:
        ids = lambda t: torch.tensor(alphabet.encode(t), dtype=torch.long)  # noqa: E731
        priming = Priming(_start_at_zero(prime[0]), ids(prime[1] + " ").to(device),
                          more=tuple((_start_at_zero(o), ids(t)) for o, t in more))
    out = model.write_rows(text.to(device), (text != 0).to(device), list(bias_rows), generator, prime=priming,
                           internals=internals, max_steps=max_steps)
    if len(out.offsets) != len(rows):
        raise HandwritingError(f"{type(model).__name__}.write_rows returned {len(out.offsets)} rows for {len(rows)}")
    extra = None
    if out.internals is not None:
        extra = []
        for row, d in zip(rows, out.internals):
            d = {"text": row, **d}
            if prime is not None:
                d["full_text"] = prime[1] + " " + row
            extra.append(d)
    return list(out.offsets), [bool(s) for s in out.stopped], extra


def _keep_best(seqs, stopped, extra, pieces, n, candidates, reranker, alphabet, device):
    """Of ``candidates`` versions of every piece (rows ordered sample, candidate, piece), keep the one the
    reranker reads closest to the piece's text; returns the kept rows and what was read in them."""
    from .reading import best_candidates, load_recognizer

    reader = load_recognizer(reranker, device=str(device))
    per = len(pieces)
    chars = "".join(alphabet.chars) if hasattr(alphabet, "chars") else None
    order = [(s * candidates + c) * per + j for s in range(n) for j in range(per) for c in range(candidates)]
    reads = reader.recognize([seqs[i] for i in order], chars=chars)
    texts = [p for _ in range(n) for p in pieces]
    best = [order[k] for k in best_candidates(reads, texts, candidates)]
    kept_reads = [reads[order.index(i)] for i in best]
    pick = lambda xs: None if xs is None else [xs[i] for i in best]  # noqa: E731
    return pick(seqs), pick(stopped), pick(extra), kept_reads


def write(
    text: str,
    model: Any = None,
    bias: float | Sequence[float] = 0.5,
    prime: Any = None,
    seed: int | None = None,
    samples: int = 1,
    return_internals: bool = False,
    max_line_chars: int | None = None,
    unknown: str = "error",
    max_steps: int | None = None,
    line_gap: float = 0.6,
    device: str | None = None,
    line_width: int | None = None,
    candidates: int = 1,
    reranker: Any = None,
    style: Any = None,
) -> Written | list[Written]:
    """Write ``text`` in handwriting; returns a :class:`Written` (a list of them for ``samples > 1`` or a
    list of biases).

    text: any text; ``\\n`` starts a new line and lines longer than ``line_width`` characters are wrapped at
        word boundaries.  Every piece of every line of every sample is drawn in one batch.
    max_line_chars: the most characters the model writes in one go (default :func:`default_line_chars`:
        what the model's text context holds and, for the transformers, what fits into their context window —
        about 11 characters for ``cursive-transformer-bigbank``).  A longer line is written in pieces that
        are joined side by side (:func:`join_pieces`); ``Written.lines`` has one Sample per piece.
    line_width: characters per written line (default: ``max_line_chars`` when given, else 50).
    model: ``None`` (the default pretrained model), a pretrained name, a checkpoint path, or a model.
    bias: Graves' sampling bias (0: as trained; larger: neater).  A list gives one sample per value.
    prime: a :class:`~handwriting.strokes.Sample` (or ``(offsets, text)``) in data units whose style the
        writing continues (Graves §5.5); its text must use the model's characters.  A list of Samples is
        several lines of one hand: the writing continues the last.  The synthesis network rehearses the
        prime's lines to lift the pen as often as the hand does (more lines, a surer rate:
        :meth:`~handwriting.models.graves.SynthesisNetwork.rehearse_lifts`).
    seed: a whole number from 0 to 2**64 - 1: the same seed gives the same handwriting; ``None`` draws one
        (kept in ``.seed``).
    unknown: characters the model does not know raise a :class:`~handwriting.errors.DataError` listing them
        (``"error"``) or are replaced (``"replace"``).
    max_steps: a cap on the points per line, at least 1 (default: the model's own length guard).
    line_gap: the space between lines in line heights (>= 0).
    device: ``cpu`` (default), ``cuda``, ``cuda:N`` or ``auto`` (:func:`~handwriting.devices.resolve_device`).
    candidates: best-of-N decoding: every piece is written ``candidates`` times in the same batch and the
        version that ``reranker`` (a recognizer; default ``recognizer-bigbank``) reads closest to the asked-for
        text is kept (``Written.read`` holds what it read).  A decoding strategy, not the model: legibility
        measured on reranked writing must be read by another recognizer than the reranker.
    style: a style file (its path, or a :class:`~handwriting.style_file.StyleFile`): the model becomes the
        style's base model with the style's tuned tensors (:func:`~handwriting.style_file.apply_style`; the
        default model is then the style's base, and a ``model`` other than that base is refused).

    Bad arguments raise an :class:`~handwriting.errors.ArgumentError` (or a
    :class:`~handwriting.devices.DeviceError`) naming the argument, its value and what is allowed, before
    any model is loaded.
    """
    import torch

    if not isinstance(text, str):
        raise DataError(f"write: text must be a string, got {type(text).__name__}")
    if unknown not in UNKNOWN:
        raise ArgumentError(f"write: unknown must be 'error' or 'replace' (--unknown), got {unknown!r}")
    many = isinstance(bias, (list, tuple, np.ndarray))
    biases = [check_number("write: bias", b, 0, hint=BIAS_HINT) for b in (bias if many else [bias])]
    if not biases:
        raise ArgumentError("write: bias is an empty list; give one value per sample (or a single number)")
    samples = check_number("write: samples", samples, 1, integer=True)
    candidates = check_number("write: candidates", candidates, 1, 64, integer=True, hint="; best of how many versions")
    seed = secrets.randbits(31) if seed is None else check_seed("write: seed", seed)
    if max_steps is not None:
        max_steps = check_number("write: max_steps", max_steps, 1, integer=True, hint="; it caps the points per line")
    line_gap = check_number("write: line_gap", line_gap, 0, hint=LINE_GAP_HINT)
    if line_width is not None:
        line_width = check_number("write: line_width (--line-width)", line_width, 1, integer=True,
                                  hint="; characters per written line")
    if max_line_chars is not None:
        max_line_chars = check_number("write: max_line_chars (--max-line-chars)", max_line_chars, 1, integer=True,
                                      hint="; characters per piece written in one go")
    m = resolve_model(model, device) if style is None else _styled_model(style, model, device)
    _check_writer(m)
    alphabet = _alphabet(m)
    prime_parts, prime_more = None, []
    if prime is not None:
        for off, ptext in _prime_lines(prime):
            # a prime's text must say what its strokes say: never replaced, whatever `unknown` says
            _check_chars([ptext], alphabet, "error", what=f"the priming sample's text {ptext!r}")
            prime_more.append((match_point_density(off, ptext, m), ptext))
        prime_parts = prime_more.pop()
    if line_width is None:
        line_width = max_line_chars if max_line_chars is not None else DEFAULT_MAX_LINE_CHARS
    if max_line_chars is None:
        max_line_chars = min(line_width, default_line_chars(m, prime_parts))
    lines = wrap_text(text, line_width)
    if not any(lines):
        raise DataError("write: the text is empty; give some characters to write")
    lines = _check_chars(lines, alphabet, unknown)
    planned = [line_pieces(ln, max_line_chars) for ln in lines]
    pieces = [p for ps, _ in planned for p in ps]
    if many:
        if samples not in (1, len(biases)):
            raise DataError(f"write: {len(biases)} bias values but samples={samples}; give one bias per sample")
        n = len(biases)
    else:
        n = samples
        biases = biases * n
    rows = [p for _ in range(n * candidates) for p in pieces]
    bias_rows = [biases[s] for s in range(n) for _ in range(candidates) for _ in pieces]
    dev = next(m.parameters()).device
    generator = torch.Generator(device=dev).manual_seed(int(seed))
    was_training = m.training
    m.eval()
    try:
        seqs, stopped, extra = _write_rows(m, rows, alphabet, bias_rows, generator, prime_parts, return_internals, max_steps,
                                           prime_more)
    finally:
        m.train(was_training)
    per = len(pieces)
    reads = None
    if candidates > 1:
        seqs, stopped, extra, reads = _keep_best(seqs, stopped, extra, pieces, n, candidates, reranker, alphabet, dev)
    out = []
    for s in range(n):
        mine = seqs[s * per : (s + 1) * per]
        slots = assemble_lines(planned, mine)
        line_samples = [Sample(o, text=p, source="generated") for o, p in zip(mine, pieces)]
        out.append(
            Written(
                layout_lines(slots, line_gap),
                text="\n".join(lines),
                writer=getattr(m, "pretrained_name", None) or type(m).__name__,
                source=f"generated:seed={seed}:bias={biases[s]}",
                lines=line_samples,
                seed=int(seed),
                bias=biases[s],
                stopped=stopped[s * per : (s + 1) * per],
                internals=None if extra is None else extra[s * per : (s + 1) * per],
                read=None if reads is None else reads[s * per : (s + 1) * per],
            )
        )
    return out if (n > 1 or many) else out[0]


# ----------------------------------------------------------------------------------------------------------
# `handwriting write`


def configure(parser) -> None:
    parser.add_argument("text", help="the text to write ('-' reads it from standard input; \\n starts a new line)")
    parser.add_argument("--model", "-m", default=None, help="pretrained name or checkpoint path (default: the default pretrained model)")
    parser.add_argument("--bias", "-b", type=float, default=0.5, help="sampling bias: 0 = as trained, higher = neater (default 0.5)")
    style = parser.add_mutually_exclusive_group()
    style.add_argument("--style", default=None, help="a style file FILE.style (`handwriting style fit`), or prime with a "
                       "named style: a synthetic writer (neat, print, ...; a wrong name lists them) "
                       "or a samples file NAME.json in data/styles ($HANDWRITING_STYLES)")
    style.add_argument("--prime", default=None, metavar="FILE", help="prime with the first sample of a handwriting-samples JSON file")
    parser.add_argument("--prime-index", type=_prime_index, default=0,
                        help="which sample of the --prime/--style file (default 0), or 'all': every sample, lines of one "
                             "hand (the writing continues the last; the Graves network rehearses them all for the "
                             "hand's rate of pen lifts)")
    parser.add_argument("--seed", "-s", type=int, default=None, help="random seed (same seed, same handwriting)")
    parser.add_argument("--output", "-o", default="handwriting.svg", help="output file: .svg .png .gif .gcode .html (default handwriting.svg)")
    parser.add_argument("--width", type=float, default=None, help="image width in pixels (G-code: millimetres)")
    parser.add_argument("--color", default=None, help="ink colour (svg/png/gif), e.g. navy or #1a1a80")
    parser.add_argument("--max-line-chars", type=int, default=None,
                        help="the most characters the model writes in one go (default: what its context holds); "
                             "also the line width unless --line-width is given")
    parser.add_argument("--line-width", type=int, default=None,
                        help="characters per written line (default 50); longer lines wrap, pieces of a line are "
                             "written one after another and joined")
    parser.add_argument("--unknown", choices=("error", "replace"), default="error", help="characters the model does not know")
    parser.add_argument("--candidates", type=int, default=1, metavar="N",
                        help="best of N: write each piece N times in one batch and keep the version the recognizer "
                             "reads best (default 1: plain sampling)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default cpu)")


def _styles_dir() -> Path:
    env = os.environ.get("HANDWRITING_STYLES")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "data" / "styles"


def _prime_index(value: str) -> int | str:
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a sample's number (0, 1, ...) nor 'all'") from None


def load_prime(path: Path, index: int | str) -> Sample | list[Sample]:
    """Sample ``index`` of a handwriting-samples file, to prime with (--prime / --style); ``"all"``: every sample."""
    from .datasets.jsonink import load_samples

    samples = load_samples(path)
    if not samples:
        raise DataError(f"{path}: holds no samples to prime with")
    if index == "all":
        for i, s in enumerate(samples):
            if not s.text.strip():
                raise DataError(f"{path}: sample {i} has no text; a prime needs the text its strokes say (add it to the "
                                "file, or prime with one sample: --prime-index N)")
        return samples
    if not 0 <= index < len(samples):
        raise DataError(f"{path}: --prime-index {index} is out of range (the file has {len(samples)} samples)")
    if not samples[index].text.strip():
        raise DataError(f"{path}: sample {index} has no text; a prime needs the text its strokes say (add it to the "
                        "file, or choose another sample with --prime-index)")
    return samples[index]


def _cli_style(name: str, index: int) -> tuple[Sample | None, str | None]:
    """``--style NAME``: ``(prime, None)`` for a named style (a samples file in :func:`_styles_dir`, else a
    synthetic writer), ``(None, path)`` for a fitted style file."""
    from .datasets.synthetic import WRITERS
    from .styles import PRIME_TEXT

    path = Path(name)
    if path.suffix == ".style" or (path.is_file() and path.suffix != ".json"):
        if index:
            raise ArgumentError(f"--prime-index {index}: a style file ({name}) is not primed with a sample; leave it out")
        return None, name  # a fitted style file (handwriting.style_file)
    if path.suffix == ".json" and path.is_file():
        raise DataError(f"{name}: is a samples file, not a style file; prime with it (--prime {name}) or fit a style "
                        f"on it (handwriting style fit {name} -o mine.style)")
    named = _styles_dir() / f"{name}.json"
    if named.is_file():
        return load_prime(named, index), None
    if name in WRITERS:
        from .datasets.synthetic import synthesize

        return synthesize([PRIME_TEXT], writer=name, seed=0)[0], None
    have = sorted(p.stem for p in _styles_dir().glob("*.json")) if _styles_dir().is_dir() else []
    raise DataError(f"no style named {name!r}: not a style file, not a samples file in {_styles_dir()} "
                    f"({', '.join(have) or 'none installed'}) and not a synthetic writer ({', '.join(WRITERS)}); "
                    "or prime with a file of your own: --prime FILE")


def run(args) -> int:
    from .export import check_output, save
    from .render import _rgba

    out = Path(args.output)
    fmt = check_output(out)  # before the (slow) writing
    options: dict[str, Any] = {}
    if args.width is not None and fmt in ("svg", "png", "gif", "gcode"):
        width = check_number("--width", args.width, 1)
        options["width_mm" if fmt == "gcode" else "width"] = width if fmt == "gcode" else int(width)
    if args.color is not None and fmt in ("svg", "png", "gif"):
        _rgba(args.color, "--color")
        options["color"] = args.color
    text = sys.stdin.read() if args.text == "-" else args.text.replace("\\n", "\n")
    prime, style_file = None, None
    if args.prime:
        prime = load_prime(Path(args.prime), args.prime_index)
    elif args.style:
        prime, style_file = _cli_style(args.style, args.prime_index)
    result = write(
        text, model=args.model, bias=args.bias, prime=prime, seed=args.seed, max_line_chars=args.max_line_chars,
        line_width=args.line_width,
        unknown=args.unknown, device=args.device, candidates=args.candidates, style=style_file,
    )  # fmt: skip
    path = save(result.offsets, out, **options)
    print(f"wrote {path} ({len(result.offsets)} points, seed {result.seed})")
    return 0
