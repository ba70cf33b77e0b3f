"""Measuring handwriting: character error rate, word accuracy, a recognizer-based legibility score,
the same score on human and synthetic reference writing, and a diversity measure.

Legibility
----------
A model is asked to write ``n`` words it never saw in training, with fixed seeds; an online recognizer
(:class:`~handwriting.models.recognizer.Recognizer`, trained on held-out-disjoint bigbank words plus
synthetic-writer text, shipped as ``data/pretrained/recognizer-bigbank``) reads them back.  Reported: the
character error rate (CER: edit distance / reference characters, over all words), the word accuracy (exact
matches), both with 95% bootstrap confidence intervals (words resampled with replacement), seconds per
sample, the most frequent confusions and the diversity of the samples.  The recognizer has no language
model, so a word is only read right when every character is legible.  It reads only characters the writer
could have written (the recognizer's ∩ the model's), and no spaces when no text has one (single words).

The same score on **reference** writing sets the scale: the held-out bigbank words (the human writer the
generators imitate; the recognizer never trained on them) and words drawn by random synthetic writers.
A generator that reaches the human figure writes as legibly as its teacher.

Unseen words (``texts="random"``, the default) are random words (:func:`~handwriting.datasets.synthetic.random_words`)
over the characters both the model and the recognizer know, minus every bigbank word, so they are in
nobody's training split.  ``texts="heldout"`` takes the held-out bigbank words of the generator's word-disjoint
split instead (read from its checkpoint; else the standard 0.1, seed 0 — the recognizer's split too, so the
recognizer never trained on those words either).

Everything is deterministic for a fixed seed (the timings aside).

Command line::

    handwriting evaluate legibility --model graves-synthesis-bigbank --bias 1 -n 500 --json out.json
    handwriting evaluate reference -n 350

The recognizer itself is trained by ``handwriting train recognizer`` (:mod:`handwriting.train.recipes`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import HandwritingError
from .reading import (  # noqa: F401  (public here too)
    DEFAULT_RECOGNIZER,
    REPO_PRETRAINED,
    EvaluateError,
    _check_recognizer,
    edit_distance,
    load_recognizer,
)

__all__ = [
    "EvaluateError",
    "DEFAULT_RECOGNIZER",
    "edit_distance",
    "edit_ops",
    "cer",
    "word_accuracy",
    "confusions",
    "bootstrap_ci",
    "score",
    "unseen_texts",
    "heldout_words",
    "load_recognizer",
    "legibility",
    "reference",
    "diversity",
    "style_features",
    "format_table",
    "configure",
    "run",
    "EPILOG",
]

#: evaluation texts and synthetic writers are drawn from seeds offset by this, so they never repeat the
#: recognizer's synthetic training words and writers (drawn with the training seed, default 0)
EVAL_SEED = 1_000_003

EPILOG = """examples:
  handwriting evaluate legibility --model graves-synthesis-bigbank --bias 1 -n 500 --json legibility.json
  handwriting evaluate legibility --model runs/graves/best --bias 0 -n 100 --texts heldout
  handwriting evaluate reference -n 350 --json reference.json
  handwriting evaluate style --model graves-synthesis-bigbank --texts 8 --json style.json   (style carry)

Legibility is read by the recognizer (default: the pretrained recognizer-bigbank; trained by
`handwriting train recognizer`): CER = edit distance /
reference characters; word accuracy = exactly read words; [lo, hi] = 95% bootstrap confidence interval.
"""


# ----------------------------------------------------------------------------------------------------------
# edit distance, CER, word accuracy


def edit_ops(pred: str, ref: str) -> list[tuple[str, str]]:
    """An optimal alignment as ``(ref_char, pred_char)`` pairs; ``""`` marks an insertion (ref side) or a
    deletion (pred side).  Matches are included (equal pairs)."""
    n, m = len(ref), len(pred)
    d = np.zeros((n + 1, m + 1), dtype=np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != pred[j - 1]))
    ops = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != pred[j - 1]):
            ops.append((ref[i - 1], pred[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            ops.append((ref[i - 1], ""))
            i -= 1
        else:
            ops.append(("", pred[j - 1]))
            j -= 1
    return ops[::-1]


def _pairs(pred, ref) -> tuple[list[str], list[str]]:
    if isinstance(pred, str) and isinstance(ref, str):
        return [pred], [ref]
    if isinstance(pred, str) or isinstance(ref, str):
        raise ValueError("cer/word_accuracy: give two strings or two lists of strings")
    pred, ref = list(pred), list(ref)
    if len(pred) != len(ref):
        raise ValueError(f"cer/word_accuracy: {len(pred)} predictions but {len(ref)} references")
    return pred, ref


def cer(pred: str | Sequence[str], ref: str | Sequence[str]) -> float:
    """Character error rate: edit distance / reference length; for lists, summed over all pairs first
    (a corpus CER, so long words weigh more).  An empty reference counts as one character."""
    pred, ref = _pairs(pred, ref)
    if not ref:
        return float("nan")
    edits = sum(edit_distance(p, r) for p, r in zip(pred, ref))
    return edits / sum(max(len(r), 1) for r in ref)


def word_accuracy(pred: str | Sequence[str], ref: str | Sequence[str]) -> float:
    """The fraction of exactly read words (texts)."""
    pred, ref = _pairs(pred, ref)
    if not ref:
        return float("nan")
    return sum(p == r for p, r in zip(pred, ref)) / len(ref)


def confusions(pred: Sequence[str], ref: Sequence[str], top: int | None = 15) -> list[tuple[str, str, int]]:
    """The most frequent errors as ``(ref_char, read_as, count)``; ``""`` is a missing or an extra character."""
    pred, ref = _pairs(pred, ref)
    c: Counter = Counter()
    for p, r in zip(pred, ref):
        if p != r:
            c.update((a, b) for a, b in edit_ops(p, r) if a != b)
    return [(a, b, n) for (a, b), n in c.most_common(top)]


def bootstrap_ci(
    numerators: Sequence[float],
    denominators: Sequence[float] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``sum(num) / sum(den)`` with items resampled with replacement
    (``den`` = ones: a mean).  CER: ``num`` = edit distances, ``den`` = reference lengths.  Vectorised."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, dtype=np.float64)
    if len(num) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB007]))
    stats = np.empty(n_boot)
    chunk = max(1, 2_000_000 // len(num))
    for s in range(0, n_boot, chunk):
        idx = rng.integers(0, len(num), size=(min(chunk, n_boot - s), len(num)))
        stats[s : s + len(idx)] = num[idx].sum(1) / np.maximum(den[idx].sum(1), 1e-12)
    a = (1 - level) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return (float(lo), float(hi))


def score(pred: Sequence[str], ref: Sequence[str], seed: int = 0, n_boot: int = 2000, top: int = 15) -> dict:
    """CER and word accuracy with 95% bootstrap intervals, counts, and the top confusions."""
    pred, ref = _pairs(pred, ref)
    edits = np.array([edit_distance(p, r) for p, r in zip(pred, ref)], dtype=np.float64)
    chars = np.array([max(len(r), 1) for r in ref], dtype=np.float64)
    right = np.array([p == r for p, r in zip(pred, ref)], dtype=np.float64)
    return {
        "n": len(ref),
        "chars": int(chars.sum()),
        "cer": float(edits.sum() / max(chars.sum(), 1)) if len(ref) else float("nan"),
        "cer_ci95": list(bootstrap_ci(edits, chars, n_boot=n_boot, seed=seed)),
        "word_accuracy": float(right.mean()) if len(ref) else float("nan"),
        "word_accuracy_ci95": list(bootstrap_ci(right, n_boot=n_boot, seed=seed + 1)),
        "confusions": [list(c) for c in confusions(pred, ref, top=top)],
    }


# ----------------------------------------------------------------------------------------------------------
# texts


_BIGBANK_CACHE: dict = {}


def _bigbank_words(path=None) -> list | None:
    """All bigbank samples (cached per file), or None when the file is not available."""
    from .datasets.jsonink import load_bigbank

    try:
        if path is None:
            from .datasets.download import bigbank_path

            path = bigbank_path()
        key = (os.fspath(path), Path(path).stat().st_mtime_ns)
        if key not in _BIGBANK_CACHE:
            _BIGBANK_CACHE.clear()
            _BIGBANK_CACHE[key] = load_bigbank(path)
        return _BIGBANK_CACHE[key]
    except (HandwritingError, OSError):
        return None


def _chars_of(model) -> str | None:
    a = getattr(model, "alphabet", None)
    if a is None:
        return None
    return a if isinstance(a, str) else getattr(a, "chars", None)


def unseen_texts(n: int, seed: int = 0, alphabet: str | None = None, exclude: Iterable[str] = (), max_len: int = 12) -> list[str]:
    """``n`` random words (bigbank-like: syllables, random strings, digits, punctuation) over ``alphabet``
    (no spaces), none of them in ``exclude``.  Deterministic in ``seed``; drawn from the seeds
    ``EVAL_SEED + …``, apart from the recognizer's synthetic training words."""
    from .datasets.synthetic import WORD_ALPHABET, random_words

    chars = "".join(sorted(set(alphabet or WORD_ALPHABET) - set(" \t\n")))
    if not chars:
        raise EvaluateError(f"unseen_texts: no characters to draw words from in {alphabet!r}")
    exclude = set(exclude)
    out: list[str] = []
    k = 0
    while len(out) < n:
        batch = random_words(max(2 * (n - len(out)), 16), seed=EVAL_SEED + seed * 1009 + k, alphabet=chars, max_len=max_len)
        out += [w for w in batch if w and w not in exclude]
        k += 1
        if k > 50:
            raise EvaluateError("unseen_texts: could not draw enough words outside the excluded set")
    return out[:n]


def heldout_words(valid_fraction: float = 0.1, split_seed: int = 0, path=None) -> list:
    """The held-out bigbank samples of the standard word-disjoint split."""
    from .datasets.torch_data import word_disjoint_split

    words = _bigbank_words(path)
    if words is None:
        raise EvaluateError(
            "the held-out bigbank words need bigbank_3500.json.zip: set HANDWRITING_BIGBANK or run "
            "`handwriting data download bigbank`"
        )
    return word_disjoint_split(words, valid_fraction, seed=split_seed)[1]


# ----------------------------------------------------------------------------------------------------------
# models


def _same_reader(a, b) -> bool:
    """Whether two recognizers are the same network (the same weights)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and bool((sa[k] == sb[k]).all()) for k in sa)


def check_reranker(what: str, rec, reranker: Any, device: str = "cpu") -> None:
    """Refuse best-of-N decoding scored by its own reranker (``reranker``: a name or path; ``None`` is
    ``recognizer-bigbank``): the score would measure nothing."""
    if _same_reader(rec, load_recognizer(reranker, device=device)):
        raise EvaluateError(
            f"{what}: the reranker and the scoring recognizer are the same network, so the score would measure "
            "nothing; score with another recognizer (--recognizer PATH) than the reranker (--reranker)"
        )


def write_lines(model, texts: Sequence[str], bias: float, seed: int, batch: int = 32, piece_chars: int | None = None,
                candidates: int = 1, reranker: Any = None) -> tuple[list, float]:
    """Write every text as one line, as :func:`~handwriting.generate.write` writes a line for a user (a line
    longer than ``piece_chars``, default :func:`~handwriting.generate.default_line_chars`, in pieces joined
    side by side), ``batch`` texts per call; return the lines (data units) and the wall time."""
    from .generate import MAX_SEED, default_line_chars, write
    from .layout import assemble_lines, line_pieces
    from .strokes import Sample

    piece_chars = piece_chars or default_line_chars(model)
    out = []
    t0 = time.perf_counter()
    for k, start in enumerate(range(0, len(texts), batch)):
        chunk = list(texts[start : start + batch])
        batch_seed = (seed * 100_003 + k) % (MAX_SEED + 1)
        w = write("\n".join(chunk), model=model, bias=bias, seed=batch_seed, max_line_chars=piece_chars,
                  line_width=10_000, candidates=candidates, reranker=reranker)
        planned = [line_pieces(t, piece_chars) for t in chunk]
        if len(w.lines) != sum(len(ps) for ps, _ in planned):
            raise EvaluateError(f"the model wrote {len(w.lines)} pieces for {len(chunk)} texts")
        lines = assemble_lines(planned, [s.offsets for s in w.lines])
        out += [Sample(o, text=t, source="generated") for o, t in zip(lines, chunk)]
    return out, time.perf_counter() - t0


def _texts_for(texts, n: int, seed: int, alphabet: str | None, recognizer, split_from=None) -> tuple[list[str], str]:
    rec_chars = set(_chars_of(recognizer) or "")
    chars = "".join(sorted((set(alphabet) if alphabet else rec_chars) & rec_chars)) or None
    if texts is None or texts == "random":
        words = _bigbank_words()
        exclude = {s.text for s in words} if words is not None else set()
        return unseen_texts(n, seed, chars, exclude), "random words outside bigbank"
    if texts == "english":
        from .datasets.phrases import english_phrases

        ok = [t for t in english_phrases(n, seed) if not chars or set(t) <= set(chars) | {" "}]
        return ok, "everyday English phrases (handwriting.datasets.phrases)"
    if texts == "heldout":
        held = heldout_words(**_split_of(split_from if split_from is not None else recognizer))
        ok = [s.text for s in held if not chars or set(s.text) <= set(chars)]
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E27]))
        if len(ok) > n:
            ok = [ok[i] for i in np.sort(rng.choice(len(ok), n, replace=False))]
        return ok, "held-out bigbank words"
    if isinstance(texts, (str, os.PathLike)) and Path(texts).is_file():
        lines = [ln.strip() for ln in Path(texts).read_text(encoding="utf-8").splitlines() if ln.strip()]
        return lines[:n], f"file {texts}"
    if isinstance(texts, str):
        raise EvaluateError(f"texts={texts!r}: use 'random', 'english', 'heldout', a file of one text per line, or a list")
    return [str(t) for t in texts][:n], "given texts"


# ----------------------------------------------------------------------------------------------------------
# diversity


def style_features(sample) -> dict[str, float]:
    """Per-sample style statistics, scale-free where possible: slant (dx per unit dy of steep moves),
    log width per character, log height, pen lifts per character, log mean pen-down step, log of the
    path length per character."""
    from .datasets.synthetic import estimate_slant
    from .strokes import to_absolute

    off = np.asarray(sample.offsets if hasattr(sample, "offsets") else sample, dtype=np.float64)
    text = getattr(sample, "text", "") or ""
    n = max(len(text.replace(" ", "")), 1)
    pts = to_absolute(off)[1:] if len(off) > 1 else to_absolute(off)
    w = max(float(np.ptp(pts[:, 0])), 1e-6)
    h = max(float(np.ptp(pts[:, 1])), 1e-6)
    pen_down = off[1:][off[:-1, 2] < 0.5, :2]
    steps = np.linalg.norm(pen_down, axis=1) if len(pen_down) else np.array([1e-6])
    return {
        "slant": float(estimate_slant(off)),
        "log_width_per_char": math.log(w / n),
        "log_height": math.log(h),
        "lifts_per_char": float(off[:, 2].sum()) / n,
        "log_step": math.log(max(float(steps.mean()), 1e-6)),
        "log_ink_per_char": math.log(max(float(steps.sum()), 1e-6) / n),
    }


def diversity(samples: Sequence, recognizer=None) -> dict:
    """How varied a set of samples is: per style feature (:func:`style_features`) its mean and standard
    deviation, and ``spread`` = the root of the summed variances of the features (0 when every sample has
    the same style; human bigbank words are the reference).  With a ``recognizer``, also
    ``embedding_spread``: the mean pairwise cosine distance of the recognizer's pooled BiLSTM features."""
    if len(samples) == 0:
        return {}
    feats = [style_features(s) for s in samples]
    names = list(feats[0])
    arr = np.array([[f[k] for k in names] for f in feats], dtype=np.float64)
    out: dict[str, Any] = {
        "n": len(samples),
        "features": {k: {"mean": float(arr[:, i].mean()), "std": float(arr[:, i].std())} for i, k in enumerate(names)},
        "spread": float(np.sqrt(arr.var(axis=0).sum())),
    }
    if recognizer is not None and len(samples) > 1:
        e = recognizer.embed(list(samples))
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        sim = e @ e.T
        n = len(e)
        out["embedding_spread"] = float((1 - sim)[~np.eye(n, dtype=bool)].mean())
    return out


# ----------------------------------------------------------------------------------------------------------
# legibility and reference


def _reading_chars(recognizer, alphabet: str | None, refs: Sequence[str]) -> str:
    """What the recognizer may read: its characters ∩ the writer's, without the space when no text has one."""
    chars = set(_chars_of(recognizer) or "")
    if alphabet:
        chars &= set(alphabet)
    if not any(" " in r for r in refs):
        chars.discard(" ")
    return "".join(sorted(chars))


def _read(recognizer, samples, refs, seed, beam_width, alphabet: str | None = None) -> tuple[list[str], dict]:
    preds = recognizer.recognize(samples, beam_width=beam_width, chars=_reading_chars(recognizer, alphabet, refs))
    res = score(preds, refs, seed=seed)
    res["examples"] = [[r, p] for r, p in zip(refs[:12], preds[:12])]
    return preds, res


def legibility(
    model: Any,
    bias: float = 0.0,
    n: int = 100,
    seed: int = 0,
    texts: Any = None,
    recognizer: Any = None,
    beam_width: int = 1,
    batch: int = 32,
    device: str = "cpu",
    return_samples: bool = False,
    candidates: int = 1,
    reranker: Any = None,
) -> dict:
    """Write ``n`` unseen texts with ``model`` (a pretrained name, a checkpoint path or a module) at ``bias``
    with fixed seeds, read them with the recognizer, and report CER and word accuracy (95% bootstrap
    intervals), seconds per sample, confusions, diversity and a few examples.  ``texts``: ``"random"``
    (default: random words outside bigbank), ``"english"`` (everyday English phrases,
    :mod:`handwriting.datasets.phrases`), ``"heldout"`` (held-out bigbank words), a file or a list.
    ``return_samples``: also return the generated ``samples`` (data units, one per text) and what the
    recognizer ``read`` (not JSON-serialisable; for further analysis such as :func:`diversity`).
    ``candidates > 1`` measures best-of-N decoding (``write(candidates=...)``) reranked by ``reranker``
    (default ``recognizer-bigbank``), which must be another network than the scoring ``recognizer``."""
    from .generate import BIAS_HINT, check_number, check_seed, resolve_model

    n = check_number("legibility: n (-n)", n, 1, integer=True, hint="; it is the number of words to write")
    batch = check_number("legibility: batch (--batch)", batch, 1, integer=True, hint="; lines written per batch")
    beam_width = check_number("legibility: beam_width (--beam)", beam_width, 1, integer=True)
    bias = check_number("legibility: bias (--bias)", bias, 0, hint=BIAS_HINT)
    seed = check_seed("legibility: seed (--seed)", seed)
    candidates = check_number("legibility: candidates (--candidates)", candidates, 1, 64, integer=True)
    rec = load_recognizer(recognizer, device=device)
    if candidates > 1:
        check_reranker("legibility", rec, reranker, device)
    gen = resolve_model(model, device=device)
    words, source = _texts_for(texts, n, seed, _chars_of(gen), rec, split_from=gen)
    if not words:
        raise EvaluateError("legibility: no texts to write")
    samples, wall = write_lines(gen, words, bias, seed, batch=batch, candidates=candidates, reranker=reranker)
    preds, res = _read(rec, samples, words, seed, beam_width, alphabet=_chars_of(gen))
    name = model if isinstance(model, (str, os.PathLike)) else getattr(gen, "pretrained_name", None) or type(gen).__name__
    extra = {"samples": samples, "read": preds} if return_samples else {}
    return {
        "what": "legibility",
        "model": os.fspath(name) if isinstance(name, os.PathLike) else name,
        "bias": float(bias),
        "seed": int(seed),
        "texts": source,
        "recognizer": _rec_name(recognizer, rec),
        "recognizer_trained_on": reader_hands(rec),
        "recognizer_sha256": reader_sha256(rec),
        "beam_width": int(beam_width),
        "candidates": int(candidates),
        "reranker": None if candidates == 1 else _rec_name(reranker, None),
        **res,
        "seconds_per_sample": wall / len(words),
        "diversity": diversity(samples),
        **extra,
    }


def reader_hands(rec) -> str:
    """Which hands a recognizer was trained on, from its description (every legibility figure says it)."""
    data = ((getattr(rec, "meta", None) or {}).get("training") or {}).get("data")
    if isinstance(data, dict):  # described by its counts (readers trained before the data had a name)
        return f"bigbank ({data.get('train_words', '?')} words) + {data.get('synthetic', '?')} synthetic-writer words"
    return str(data) if data else "unknown (no training description)"


def reader_sha256(rec) -> str | None:
    """The SHA-256 of a recognizer's weights: a name can be republished with other weights, this cannot."""
    return ((getattr(rec, "meta", None) or {}).get("weights") or {}).get("sha256")


def _rec_name(arg, rec) -> str:
    if isinstance(arg, (str, os.PathLike)):
        return os.fspath(arg)
    return getattr(rec, "pretrained_name", None) or (DEFAULT_RECOGNIZER if arg is None else type(rec).__name__)


def reference(
    n: int = 350, seed: int = 0, recognizer: Any = None, beam_width: int = 1, writer: str | None = None, device: str = "cpu",
    hands: bool = False,
) -> dict:
    """The legibility score of reference writing: ``human`` = up to ``n`` held-out bigbank words (the split
    the recognizer was trained without), ``synthetic`` = ``n`` unseen random words drawn by synthetic writers
    (``writer``: a name in :data:`~handwriting.datasets.synthetic.WRITERS` or None for random writers).
    ``hands``: also the same held-out words written by every held-out hand
    (:func:`~handwriting.datasets.writers.held_out_writers`: hands no training line of the project is in), one
    score per hand (``held_out_hands``) and all of them pooled (``held_out_pooled``): how well the reader reads
    writers it never saw."""
    from .datasets.synthetic import synthesize
    from .generate import check_number, check_seed

    n = check_number("reference: n (-n)", n, 1, integer=True, hint="; it is the number of words to read")
    beam_width = check_number("reference: beam_width (--beam)", beam_width, 1, integer=True)
    seed = check_seed("reference: seed (--seed)", seed)
    rec = load_recognizer(recognizer, device=device)
    out: dict[str, Any] = {"what": "reference", "seed": int(seed), "recognizer": _rec_name(recognizer, rec), "beam_width": beam_width,
                           "recognizer_trained_on": reader_hands(rec), "recognizer_sha256": reader_sha256(rec)}  # fmt: skip
    try:
        words, _ = _texts_for("heldout", n, seed, None, rec)
        held = heldout_words(**_split_of(rec))
        by_text: dict[str, list] = {}
        for s in held:
            by_text.setdefault(s.text, []).append(s)
        human = [by_text[w].pop(0) for w in words]
        t0 = time.perf_counter()
        _, res = _read(rec, human, [s.text for s in human], seed, beam_width)
        res["seconds_per_sample_read"] = (time.perf_counter() - t0) / max(len(human), 1)
        res["diversity"] = diversity(human)
        out["human"] = {"texts": "held-out bigbank words", **res}
        if hands:
            out.update(_read_hands(rec, human, held, seed, beam_width))
    except EvaluateError as exc:
        out["human"] = {"skipped": str(exc)}
    texts, source = _texts_for("random", n, seed, None, rec)
    t0 = time.perf_counter()
    syn = synthesize(texts, writer=writer, seed=EVAL_SEED + seed)
    wall = time.perf_counter() - t0
    _, res = _read(rec, syn, texts, seed, beam_width)
    out["synthetic"] = {"texts": source, "writer": writer or "random", **res, "seconds_per_sample": wall / len(texts),
                        "diversity": diversity(syn)}  # fmt: skip
    return out


def held_out_lines(texts: Sequence[str], seed: int = 0) -> list[str]:
    """``texts`` (words) joined in order into lines of two or three words (the count drawn with ``seed``); a
    last word left alone joins the line before it."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x11E5]))
    lines, i = [], 0
    while i < len(texts):
        k = int(rng.integers(2, 4))
        lines.append(list(texts[i : i + k]))
        i += k
    if len(lines) > 1 and len(lines[-1]) == 1:
        last = lines.pop()
        lines[-1] += last
    return [" ".join(ws) for ws in lines]


def _read_hands(rec, words: Sequence, real: Sequence, seed: int, beam_width: int) -> dict:
    """``words`` (held-out samples) written by every held-out hand and read by ``rec``, one by one and joined
    into lines of 2-3 words (:func:`held_out_lines`: a reader must find the spaces too)."""
    from .datasets.writers import held_out_writers

    texts = [s.text for s in words]
    lines = held_out_lines(texts, seed)
    per, read_words, read_lines = {}, [], []
    for w in held_out_writers(real):
        preds, res = _read(rec, [w.write(t, EVAL_SEED + seed + k) for k, t in enumerate(texts)], texts, seed, beam_width)
        preds_l, res_l = _read(rec, [w.write(t, EVAL_SEED + seed + k) for k, t in enumerate(lines)], lines, seed, beam_width)
        per[w.name] = {"kind": w.kind, **res, "lines": res_l}
        read_words += preds
        read_lines += preds_l
    pooled = {k: _pooled(p, r, seed) for k, p, r in (("words", read_words, texts), ("lines", read_lines, lines))}
    return {"held_out_hands": per, "held_out_pooled": pooled["words"], "held_out_lines_pooled": pooled["lines"]}


def _pooled(preds: list[str], refs: Sequence[str], seed: int) -> dict:
    """The score of every hand's reading of ``refs`` together (``preds``: one reading per hand, hand after hand)."""
    refs = list(refs) * (len(preds) // max(len(refs), 1))
    return {**score(preds, refs, seed=seed), "examples": [[r, p] for r, p in zip(refs[:12], preds[:12])]}


def _split_of(model) -> dict:
    """The word-disjoint split a model was trained with (``training.data.valid_fraction`` / ``split_seed`` in
    its checkpoint description), else the standard one (0.1, seed 0)."""
    meta = (getattr(model, "meta", None) or {}).get("training", {}) or {}
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    vf = data.get("valid_fraction", meta.get("valid_fraction", 0.1))
    seed = data.get("split_seed", meta.get("split_seed", 0))
    try:
        return {"valid_fraction": float(vf), "split_seed": int(seed)}
    except (TypeError, ValueError):
        return {"valid_fraction": 0.1, "split_seed": 0}


# ----------------------------------------------------------------------------------------------------------
# printing


def _fmt_ci(v: float, ci: Sequence[float], pct: bool = True) -> str:
    f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
    return f"{f(v)} [{f(ci[0])}, {f(ci[1])}]"


def format_table(rows: Sequence[tuple[str, dict]]) -> str:
    """A plain-text table of (label, score dict) rows."""
    head = ("what", "n", "CER [95% CI]", "word acc. [95% CI]", "s/sample", "spread")
    body = []
    for label, r in rows:
        if "skipped" in r:
            body.append((label, "-", r["skipped"], "", "", ""))
            continue
        sps = r.get("seconds_per_sample")
        body.append(
            (
                label,
                str(r["n"]),
                _fmt_ci(r["cer"], r["cer_ci95"]),
                _fmt_ci(r["word_accuracy"], r["word_accuracy_ci95"]),
                "-" if sps is None else f"{sps:.3f}",
                "-" if not r.get("diversity") else f"{r['diversity']['spread']:.3f}",
            )
        )
    widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
    line = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def _print_confusions(label: str, r: dict) -> None:
    conf = r.get("confusions") or []
    if conf:
        shown = ", ".join(f"{a or '∅'!r}→{b or '∅'!r} ×{n}" for a, b, n in conf[:8])
        print(f"{label}: top confusions (ref→read): {shown}")


def _write_json(path, obj) -> None:
    from .render import _write  # atomic; an OutputError naming the path if it fails

    _write(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n", "JSON")


# ----------------------------------------------------------------------------------------------------------
# command line


def configure(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(p):
        p.add_argument("-n", type=int, default=None, help="number of words (legibility: 100; reference: 350)")
        p.add_argument("--seed", type=int, default=0, help="seed of the texts and of the sampling (default 0)")
        p.add_argument("--recognizer", default=None, help=f"recognizer checkpoint or pretrained name (default {DEFAULT_RECOGNIZER})")
        p.add_argument("--beam", type=int, default=1, help="CTC beam width (1: greedy decoding, the default)")
        p.add_argument("--json", default=None, metavar="FILE", help="also write the full results as JSON")
        p.add_argument("--device", default="cpu")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    p = sub.add_parser("legibility", help="CER / word accuracy of a model's writing, read by the recognizer")
    p.add_argument("--model", required=True, help="pretrained name or checkpoint path of a text-conditioned model")
    p.add_argument("--bias", type=float, nargs="+", default=[0.0], help="sampling bias(es) (default 0)")
    p.add_argument("--texts", default="random", help="'random' (unseen random words), 'english' (everyday phrases of 2-5 "
                   "words, capitals and punctuation), 'heldout' or a file of one text per line")
    p.add_argument("--batch", type=int, default=32, help="lines generated per batch")
    p.add_argument("--candidates", type=int, default=1, metavar="N",
                   help="best-of-N decoding: write each text N times, keep what --reranker reads best (score it "
                        "with another --recognizer)")
    p.add_argument("--reranker", default=None, help=f"the recognizer that reranks candidates (default {DEFAULT_RECOGNIZER})")
    common(p)

    p = sub.add_parser("reference", help="the same score on held-out human writing and on the synthetic writer")
    p.add_argument("--writer", default=None, help="synthetic writer name (default: a random writer per word)")
    p.add_argument("--hands", action="store_true", help="also the held-out words in every held-out hand (a reader for any hand?)")
    common(p)

    p = sub.add_parser("style", help="style carry: primed with an unseen writer, does the model write in their style?")
    _style_carry().configure(p)


def _style_carry():
    """handwriting.style_carry, which imports this module (by name, so no import cycle)."""
    import importlib

    return importlib.import_module(f"{__package__}.style_carry")


def run(args) -> int:
    import torch

    from .export import check_output
    from .generate import BIAS_HINT, check_number

    if args.json:
        check_output(args.json, formats=None)  # in a moment, not after the evaluation
    if getattr(args, "threads", None) is not None:
        torch.set_num_threads(check_number("--threads", args.threads, 1, integer=True, hint="; torch CPU threads"))
    if args.action == "legibility":
        n = 100 if args.n is None else args.n
        for b in args.bias:  # all of them before the first evaluation
            check_number("--bias", b, 0, hint=BIAS_HINT)
        results = []
        for b in args.bias:
            r = legibility(args.model, bias=b, n=n, seed=args.seed, texts=args.texts, recognizer=args.recognizer,
                           beam_width=args.beam, batch=args.batch, device=args.device, candidates=args.candidates,
                           reranker=args.reranker)  # fmt: skip
            results.append(r)
        decoding = "" if args.candidates == 1 else f", best of {args.candidates} reranked by {results[0]['reranker']}"
        print(f"legibility of {args.model} on {n} {results[0]['texts']} (seed {args.seed}{decoding}), "
              f"read by {results[0]['recognizer']} (trained on {results[0]['recognizer_trained_on']})")
        print(format_table([(f"bias {r['bias']:g}", r) for r in results]))
        for r in results:
            _print_confusions(f"bias {r['bias']:g}", r)
        if args.json:
            _write_json(args.json, results[0] if len(results) == 1 else results)
        return 0
    if args.action == "reference":
        r = reference(n=350 if args.n is None else args.n, seed=args.seed, recognizer=args.recognizer, beam_width=args.beam,
                      writer=args.writer, device=args.device, hands=args.hands)  # fmt: skip
        print(f"reference writing read by {r['recognizer']} (trained on {r['recognizer_trained_on']}; seed {args.seed})")
        rows = [("human (bigbank held-out)", r["human"]), (f"synthetic ({r['synthetic']['writer']})", r["synthetic"])]
        rows += [(f"held-out hand {k} ({v['kind']})", v) for k, v in (r.get("held_out_hands") or {}).items()]
        rows += [("held-out hands, pooled", r["held_out_pooled"])] if "held_out_pooled" in r else []
        rows += [(f"held-out hand {k}, lines of 2-3 words", v["lines"]) for k, v in (r.get("held_out_hands") or {}).items()]
        rows += [("held-out hands' lines, pooled", r["held_out_lines_pooled"])] if "held_out_lines_pooled" in r else []
        print(format_table(rows))
        for k in ("human", "synthetic"):
            _print_confusions(k, r[k])
        if args.json:
            _write_json(args.json, r)
        return 0
    if args.action == "style":
        return _style_carry().run(args)
    raise EvaluateError(f"unknown action {args.action!r}")
