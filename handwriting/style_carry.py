"""Style carry: does a generator, primed with a sample of a writer it never saw (Graves 2013 §5.5, "primed
sampling"), write new text in that writer's style?  ``handwriting evaluate style --model NAME``.

The measurement
---------------
1. **Writers**: the held-out hands of :func:`~handwriting.datasets.writers.held_out_writers` — the eight named
   synthetic writers and, given real ink, the four restyled real hands of
   :data:`~handwriting.datasets.writers.HELD_OUT_INK` (12 writers); no training data uses them.  The real
   ink is that of the held-out bigbank words (:func:`~handwriting.evaluate.heldout_words`), which no model here
   trained on.  (``words="random"``: random words outside bigbank, written by the synthetic writers only —
   the restyled hands can only write words they have real ink for.)  ``--hands training`` measures a control
   instead: hands drawn as the training lines are (:func:`~handwriting.datasets.writers.training_writers`), so
   that a hand the model cannot generalise to is told from a face it has not learnt at all.
2. **Texts**: of those words, only letters-only words of at least three characters that the model and the
   recognizer both know (digits and punctuation carry little style); drawn with ``seed``.  A **prime text**
   of 2-3 words, and ``n_texts`` **target texts** of 1-3 other words (disjoint from the prime's), the same
   texts for every writer.  Every writer writes the prime (its **prime**, seed-fixed) and the target texts
   (its **reference**).  ``--prime-lines N``: N − 1 further prime lines of 2-3 unused words, written before it.
3. **Outputs**: the model writes every target text **primed** with the writer's prime, and **unprimed**, at
   ``bias`` (default 0.5), through :func:`~handwriting.generate.write` (the prime thinned to the model's point
   density as ``write`` does).  Writer ``i``'s primed and unprimed outputs share one seed (a paired
   comparison) and different writers get different seeds, so the unprimed outputs are independent draws of
   the model's own hand: the null condition.  Both conditions cut the texts into the same pieces — the ones
   ``write`` uses under that writer's prime (:func:`~handwriting.generate.default_line_chars`) — so they differ
   in nothing but the prime.  With ``fit_words`` (``--fit-words 30``) a third, **styled**, condition: a style
   file fitted on that many further words of the writer (:mod:`~handwriting.style_fit`), writing the targets
   unprimed with the unprimed condition's seeds; :func:`carry_table` takes any number of conditions.
4. **Features**: per writer and condition, the mean :func:`~handwriting.evaluate.style_features` over its
   samples (the reference, the primed outputs, the unprimed outputs).
5. **Report** (:func:`carry_table`):

   a. **Spearman rank correlation** across writers between the reference and the output features, for
      slant, pen lifts per character and log width per character (:data:`CORRELATED`), per condition, with
      a 95% percentile bootstrap interval over writers.  Unprimed output does not depend on the writer, so
      its correlations are ~0 (up to noise): style carry is primed ρ well above it.
   b. **Style distance**: the Euclidean distance between a writer's output and reference feature vectors
      (:data:`DISTANCE_FEATURES`), each feature divided by the across-writer standard deviation of the
      references, averaged over writers (bootstrap interval over writers), per condition, and the paired
      difference unprimed − primed (> 0: priming moved the writing towards the writer).  ``log_step`` (the
      mean pen-down step) is left out: it measures how densely a writer's ink is sampled, which the model's
      output inherits from its training data whatever the prime.
   c. **CER** of the primed and the unprimed outputs and of the references, read by a recognizer (default
      ``recognizer-bigbank``, trained on bigbank + synthetic-writer hands; the restyled real hands and the
      held-out words are not in its training data) with 95% bootstrap intervals over texts: priming should
      not cost legibility.
   d. **The prime itself** (condition ``own_prime``): ρ and distance of each writer's prime, scored as if it were
      the output.  A prime of a few words shows a feature only as far as its letters do (a rate of pen lifts
      rests on a handful of lifts), so its ρ says how much of the ranking the prime itself carries.

Everything is deterministic for a fixed seed (the timings aside).  One seed is one draw of texts, primes and
sampling, and a draw's CER moves by a point or two with its texts: ``--draws N`` (:func:`measure_draws`) measures N
seeds and pools their CER, the estimate to hold against a bar.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Mapping, Sequence

import numpy as np

from .evaluate import (
    EvaluateError,
    _bigbank_words,
    _chars_of,
    _fmt_ci,
    _read,
    _rec_name,
    _split_of,
    _write_json,
    bootstrap_ci,
    cer,
    check_reranker,
    heldout_words,
    load_recognizer,
    reader_sha256,
    style_features,
    unseen_texts,
)

__all__ = [
    "CORRELATED",
    "DISTANCE_FEATURES",
    "spearman",
    "average_ranks",
    "mean_features",
    "style_distance",
    "carry_table",
    "choose_texts",
    "measure",
    "measure_draws",
    "format_carry",
    "format_draws",
    "configure",
    "run",
]

#: the features whose rank correlation across writers is reported
CORRELATED = ("slant", "lifts_per_char", "log_width_per_char")
#: the features of the style distance (``log_step``, the point density, left out)
DISTANCE_FEATURES = ("slant", "log_width_per_char", "log_height", "lifts_per_char", "log_ink_per_char")
N_BOOT = 2000


# ----------------------------------------------------------------------------------------------------------
# statistics


def average_ranks(x, axis: int = -1) -> np.ndarray:
    """1-based ranks along ``axis``, ties getting the mean of the ranks they span (scipy's ``rankdata``)."""
    a = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    less = (a[..., None, :] < a[..., :, None]).sum(-1)
    equal = (a[..., None, :] == a[..., :, None]).sum(-1)
    return np.moveaxis(less + (equal + 1) / 2.0, -1, axis)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, (a * b).sum(-1) / np.where(den > 1e-12, den, 1.0), np.nan)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: the Pearson correlation of the average ranks (ties averaged); NaN when
    either side is constant or there are fewer than two pairs."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman: two equally long 1-D sequences, got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        return float("nan")
    return float(_pearson_rows(average_ranks(x), average_ranks(y)))


def _spearman_ci(x, y, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (95%) of :func:`spearman`, writers resampled with replacement; resamples
    where one side is constant are dropped."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EA2]))
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    r = _pearson_rows(average_ranks(x[idx]), average_ranks(y[idx]))
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(r, [0.025, 0.975])
    return (float(lo), float(hi))


def mean_features(samples: Sequence) -> dict[str, float]:
    """The mean of :func:`~handwriting.evaluate.style_features` over ``samples``."""
    if len(samples) == 0:
        raise EvaluateError("mean_features: no samples")
    feats = [style_features(s) for s in samples]
    return {k: float(np.mean([f[k] for f in feats])) for k in feats[0]}


def _features_of(per_writer) -> dict[str, float]:
    """Samples → their mean features; an already computed feature dict passes through."""
    if isinstance(per_writer, Mapping):
        return {k: float(v) for k, v in per_writer.items()}
    return mean_features(per_writer)


def style_distance(output: Sequence[Mapping[str, float]], reference: Sequence[Mapping[str, float]],
                   features: Sequence[str] = DISTANCE_FEATURES) -> dict:
    """Per writer, the Euclidean distance between ``output[i]`` and ``reference[i]`` (feature dicts) over
    ``features``, each divided by the across-writer standard deviation of the references (features that do
    not vary across writers are left out); ``mean`` over writers, ``scale`` (the stds) and ``features`` used."""
    if len(output) != len(reference) or len(reference) < 2:
        raise EvaluateError(f"style_distance: needs as many outputs as references, at least two ({len(output)}, {len(reference)})")
    ref = np.array([[r[k] for k in features] for r in reference], dtype=np.float64)
    out = np.array([[o[k] for k in features] for o in output], dtype=np.float64)
    std = ref.std(0)
    used = std > 1e-12
    d = np.sqrt((((out - ref)[:, used] / std[used]) ** 2).sum(1))
    return {"per_writer": [float(v) for v in d], "mean": float(d.mean()),
            "scale": {k: float(s) for k, s, u in zip(features, std, used) if u},
            "features": [k for k, u in zip(features, used) if u]}  # fmt: skip


def carry_table(reference: Mapping[str, Any], primed: Mapping[str, Any], unprimed: Mapping[str, Any] | None = None,
                kinds: Mapping[str, str] | None = None, seed: int = 0, n_boot: int = N_BOOT,
                prime: Mapping[str, Any] | None = None, **more: Mapping[str, Any]) -> dict:
    """The style-carry statistics from data: ``reference``, ``primed``, ``unprimed`` (and any further
    condition in ``more``, e.g. ``style=...``) map each writer's name to its samples (or to a ready feature
    dict, as :func:`mean_features` makes).  ``prime``: each writer's prime, scored as if it were an output
    (condition ``own_prime``: how well the prime's own features rank the writers' features on the target texts).
    Returns ``writers`` (name, kind, mean features per condition, distance per condition) and ``summary``:
    ``spearman`` (per condition, per :data:`CORRELATED` feature: ``rho`` and ``ci95``), ``distance`` (per
    condition: ``mean``, ``ci95``, ``per_writer``) and ``distance_gain`` (unprimed − primed, paired over writers;
    ``distance_gains``: the same for every condition of a model)."""
    names = list(reference)
    conditions = {"primed": primed, **({"unprimed": unprimed} if unprimed is not None else {}), **more,
                  **({"own_prime": prime} if prime is not None else {})}
    for c, per in conditions.items():
        if set(per) != set(names):
            raise EvaluateError(f"carry_table: the {c} outputs are for other writers than the references")
    if len(names) < 2:
        raise EvaluateError(f"carry_table: needs at least two writers, got {len(names)}")
    ref = [_features_of(reference[n]) for n in names]
    feats = {c: [_features_of(per[n]) for n in names] for c, per in conditions.items()}
    rows = [{"name": n, "kind": (kinds or {}).get(n, ""), "reference": ref[i], **{c: f[i] for c, f in feats.items()}}
            for i, n in enumerate(names)]  # fmt: skip
    summary: dict[str, Any] = {"writers": len(names), "spearman": {}, "distance": {}}
    for ci, (c, f) in enumerate(feats.items()):
        summary["spearman"][c] = {}
        for k, key in enumerate(CORRELATED):
            x, y = [r[key] for r in ref], [o[key] for o in f]
            summary["spearman"][c][key] = {"rho": spearman(x, y), "ci95": list(_spearman_ci(x, y, n_boot, seed + 10 * ci + k))}
        d = style_distance(f, ref)
        summary["distance"][c] = {**d, "ci95": list(bootstrap_ci(d["per_writer"], n_boot=n_boot, seed=seed + 100 + ci))}
        for row, v in zip(rows, d["per_writer"]):
            row.setdefault("distance", {})[c] = v
    if "unprimed" in feats:
        gains = {}
        for ci, c in enumerate(c for c in feats if c not in ("unprimed", "own_prime")):
            gain = np.subtract(summary["distance"]["unprimed"]["per_writer"], summary["distance"][c]["per_writer"])
            gains[c] = {"mean": float(gain.mean()), "ci95": list(bootstrap_ci(gain, n_boot=n_boot, seed=seed + 200 + ci)),
                        "what": f"unprimed − {c} style distance, paired over writers (> 0: {c} output is nearer the writer)"}  # fmt: skip
        summary["distance_gain"] = gains["primed"]
        summary["distance_gains"] = gains
    return {"writers": rows, "summary": summary}


# ----------------------------------------------------------------------------------------------------------
# texts and outputs


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1, dtype=np.uint32)[0])


def choose_texts(words: Sequence[str], n_texts: int, seed: int = 0) -> tuple[str, list[str]]:
    """A prime text of 2-3 words and ``n_texts`` target texts of 1-3 other words each (no word twice), drawn
    with ``seed`` from the distinct ``words``."""
    pool = sorted(set(words))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x57C4]))
    pool = [pool[i] for i in rng.permutation(len(pool))]
    k = int(rng.integers(2, 4))
    sizes = [int(s) for s in rng.integers(1, 4, size=n_texts)]
    if len(pool) < k + sum(sizes):
        raise EvaluateError(f"style: {len(pool)} distinct words are too few for a prime and {n_texts} texts "
                            f"({k + sum(sizes)} words); ask for fewer texts (--texts)")
    prime, pos, texts = " ".join(pool[:k]), k, []
    for s in sizes:
        texts.append(" ".join(pool[pos : pos + s]))
        pos += s
    return prime, texts


def _usable(text: str, chars: set) -> bool:
    return len(text) >= 3 and text.isascii() and text.isalpha() and set(text) <= chars


def _model_writes(gen, texts: Sequence[str], prime, bias: float, seed: int, piece_chars: int, candidates: int = 1,
                  reranker: Any = None) -> list:
    """Every target text as one line written by ``gen`` through :func:`~handwriting.generate.write` (in one
    batch; a text longer than ``piece_chars`` in pieces joined side by side), primed with ``prime`` or not;
    ``candidates`` > 1: each piece the best of that many versions, as ``reranker`` reads them."""
    from .generate import write
    from .layout import assemble_lines, line_pieces
    from .strokes import Sample

    w = write("\n".join(texts), model=gen, bias=bias, seed=seed, prime=prime, max_line_chars=piece_chars, line_width=10_000,
              candidates=candidates, reranker=reranker)
    planned = [line_pieces(t, piece_chars) for t in texts]
    if len(w.lines) != sum(len(ps) for ps, _ in planned):
        raise EvaluateError(f"style: the model wrote {len(w.lines)} pieces for {len(texts)} texts")
    lines = assemble_lines(planned, [s.offsets for s in w.lines])
    return [Sample(o, text=t, source="generated") for o, t in zip(lines, texts)]


def _reader_hands(rec) -> str:
    data = ((getattr(rec, "meta", None) or {}).get("training") or {}).get("data")
    if isinstance(data, dict):
        hands = (["bigbank"] if data.get("bigbank_words") else []) + (["synthetic writer"] if data.get("synthetic") else [])
        if hands:
            return " + ".join(hands)
    return str(data) if data else "unknown"


def measure(model: Any, n_texts: int = 8, bias: float = 0.5, seed: int = 0, words: str = "heldout", recognizer: Any = None,
            beam_width: int = 1, device: str = "cpu", writers: Sequence | None = None, n_boot: int = N_BOOT,
            fit_words: int = 0, fit_minutes: float | None = 5.0, fit_steps: int | None = None, candidates: int = 1,
            reranker: Any = None, hands: str = "held-out", prime_lines: int = 1) -> dict:
    """Write, read and compare (see the module docstring): the :func:`carry_table` of ``model`` (a pretrained
    name, a checkpoint path or a module) on the held-out writers, plus ``cer`` (reference / primed /
    unprimed), the texts, the settings and the timings.  ``words``: ``"heldout"`` (held-out bigbank words;
    needs bigbank) or ``"random"`` (random words outside bigbank; synthetic writers only).  ``writers``:
    :class:`~handwriting.datasets.writers.Writer` objects to use instead of the held-out ones; ``hands="training"``:
    the control :func:`~handwriting.datasets.writers.training_writers` (hands drawn as the training lines are)
    instead of the held-out ones.

    ``fit_words`` > 0 adds the **styled** condition ("your hand in five minutes"): each writer writes
    ``fit_words`` further words of the pool (none of the prime's or the targets'), a style file is fitted on
    them (:func:`~handwriting.style_fit.fit_style`, ``fit_minutes`` of wall time / ``fit_steps`` steps per
    writer) and the styled model writes the target texts unprimed, with the unprimed condition's seeds.

    ``prime_lines`` > 1 primes with that many lines of each writer: the prime text and further lines of 2-3
    words of the pool (none of the targets'), the prime text last, so that the writing continues it as with one
    line (:func:`~handwriting.generate.write` with a list of samples); the own-prime features are over all of them.

    ``candidates`` > 1 measures best-of-N decoding in every condition of the model (``write(candidates=...)``,
    reranked by ``reranker``, default ``recognizer-bigbank``), which must be another network than the scoring
    ``recognizer``."""
    from .datasets.writers import held_out_writers, training_writers
    from .generate import BIAS_HINT, check_number, check_seed, default_line_chars, match_point_density, resolve_model

    n_texts = check_number("style: n_texts (--texts)", n_texts, 1, integer=True, hint="; target texts per writer")
    bias = check_number("style: bias (--bias)", bias, 0, hint=BIAS_HINT)
    seed = check_seed("style: seed (--seed)", seed)
    beam_width = check_number("style: beam_width (--beam)", beam_width, 1, integer=True)
    candidates = check_number("style: candidates (--candidates)", candidates, 1, 64, integer=True)
    if hands not in ("held-out", "training"):
        raise EvaluateError(f"style: hands={hands!r}: use 'held-out' (hands no model here trained on) or 'training' "
                            "(hands drawn as the training lines are: the control)")
    if words not in ("heldout", "random"):
        raise EvaluateError(f"style: words={words!r}: use 'heldout' (held-out bigbank words) or 'random'")
    t_start = time.perf_counter()
    rec = load_recognizer(recognizer, device=device)
    if candidates > 1:
        check_reranker("style", rec, reranker, device)
    best_of = {"candidates": candidates, "reranker": reranker}
    gen = resolve_model(model, device=device)
    chars = set(_chars_of(gen) or "") & set(_chars_of(rec) or "")
    if words == "heldout":
        held = heldout_words(**_split_of(gen))
        pool = sorted({s.text for s in held if _usable(s.text, chars)})
        source = "held-out bigbank words (letters only, >= 3 characters)"
    else:
        held = None
        letters = "".join(sorted(c for c in chars if c.isascii() and c.isalpha()))
        bank = _bigbank_words()
        exclude = {s.text for s in bank} if bank is not None else set()
        pool = sorted({w for w in unseen_texts(12 * n_texts + 24, seed, letters, exclude) if _usable(w, chars)})
        source = "random words outside bigbank (letters only, >= 3 characters)"
    prime_text, texts = choose_texts(pool, n_texts, seed)
    fit_words = check_number("style: fit_words (--fit-words)", fit_words, 0, integer=True,
                             hint="; words each writer gives the style fit (0: no styled condition)")
    prime_lines = check_number("style: prime_lines (--prime-lines)", prime_lines, 1, 20, integer=True,
                               hint="; lines of each writer's hand to prime with")
    prime_texts = _more_prime_texts(pool, prime_text, texts, prime_lines - 1, seed) + [prime_text]
    fit_texts = _fit_texts(pool, " ".join(prime_texts), texts, fit_words, seed) if fit_words else []
    if writers is not None:
        if hands != "held-out":
            raise EvaluateError(f"style: writers= and hands={hands!r} both say which hands to measure; give one of them")
        chosen = list(writers)
    else:
        chosen = held_out_writers(held) if hands == "held-out" else training_writers(held, seed=seed)
    if len(chosen) < 3:
        raise EvaluateError(f"style: {len(chosen)} writers are too few for a rank correlation; give at least three")
    reference, primed, unprimed, styled, primes, pieces, fits, own = {}, {}, {}, {}, {}, {}, {}, {}
    t_writers = t_model = t_fit = 0.0
    for i, w in enumerate(chosen):
        t0 = time.perf_counter()
        prime = w.write(prime_text, _seed(seed, i, 0x9A1))
        lines = [w.write(t, _seed(seed, i, 0x9A1, j)) for j, t in enumerate(prime_texts[:-1])] + [prime]
        reference[w.name] = [w.write(t, _seed(seed, i, 0x4EF, j)) for j, t in enumerate(texts)]
        t1 = time.perf_counter()
        # the pieces write() cuts the texts into under this prime, used for both conditions
        pieces[w.name] = default_line_chars(gen, (match_point_density(prime.offsets, prime.text, gen), prime.text))
        s = _seed(seed, i, 0x60D)
        primed[w.name] = _model_writes(gen, texts, lines, bias, s, pieces[w.name], **best_of)
        unprimed[w.name] = _model_writes(gen, texts, None, bias, s, pieces[w.name], **best_of)
        t_writers += t1 - t0
        t_model += time.perf_counter() - t1
        if fit_texts:
            from .style_file import apply_style
            from .style_fit import fit_style

            t2 = time.perf_counter()
            mine = [w.write(t, _seed(seed, i, 0xF17, j)) for j, t in enumerate(fit_texts)]
            st = fit_style(mine, model=gen, minutes=fit_minutes, steps=fit_steps, seed=_seed(seed, i, 0xF17), device=device)
            fits[w.name] = {**{k: st.meta["training"].get(k) for k in ("steps", "kept_step", "stopped_by")},
                            "seconds": round(time.perf_counter() - t2, 1)}
            t_fit += time.perf_counter() - t2
            t3 = time.perf_counter()
            styled[w.name] = _model_writes(apply_style(st, gen).eval(), texts, None, bias, s, pieces[w.name], **best_of)
            t_model += time.perf_counter() - t3
        primes[w.name] = {"points": sum(len(p.offsets) for p in lines), "text": " / ".join(p.text for p in lines)}
        own[w.name] = lines
    kinds = {w.name: w.kind for w in chosen}
    more = {"styled": styled} if fit_texts else {}
    table = carry_table(reference, primed, unprimed, kinds=kinds, seed=seed, n_boot=n_boot, prime=own, **more)
    t0 = time.perf_counter()
    read: dict[str, Any] = {}
    names = [w.name for w in chosen]
    for c, per in (("reference", reference), ("primed", primed), ("unprimed", unprimed), *more.items()):
        samples = [s for n in names for s in per[n]]
        refs = [s.text for s in samples]
        preds, res = _read(rec, samples, refs, seed, beam_width, alphabet=_chars_of(gen))
        read[c] = res
        for k, row in enumerate(table["writers"]):  # in the order of names
            span = slice(k * len(texts), (k + 1) * len(texts))
            row.setdefault("cer", {})[c] = cer(preds[span], refs[span])
            row.setdefault("read", {})[c] = preds[span]
    t_read = time.perf_counter() - t0
    name = model if isinstance(model, (str, os.PathLike)) else getattr(gen, "pretrained_name", None) or type(gen).__name__
    for row in table["writers"]:
        row["prime"] = primes[row["name"]]
        row["piece_chars"] = pieces[row["name"]]
        if row["name"] in fits:
            row["style_fit"] = fits[row["name"]]
    return {
        "what": "style carry",
        "model": os.fspath(name),
        "bias": float(bias),
        "seed": int(seed),
        "words": source,
        "hands": "given" if writers is not None else hands,
        "prime_text": prime_text,
        "prime_lines": prime_texts,
        "texts": texts,
        "recognizer": _rec_name(recognizer, rec),
        "recognizer_trained_on": _reader_hands(rec),
        "recognizer_sha256": reader_sha256(rec),
        "beam_width": int(beam_width),
        "candidates": int(candidates),
        "reranker": None if candidates == 1 else _rec_name(reranker, None),
        "correlated": list(CORRELATED),
        **table,
        "cer": read,
        **({"style_fit": {"words": fit_texts, "minutes": fit_minutes, "steps": fit_steps}} if fit_texts else {}),
        "seconds": {"writers": t_writers, "model": t_model, "fitting": t_fit, "reading": t_read,
                    "total": time.perf_counter() - t_start},
    }


def measure_draws(model: Any, draws: int, seed: int = 0, **kw) -> dict:
    """:func:`measure` on ``draws`` draws — seeds ``seed`` … ``seed + draws − 1``, each its own texts, primes and
    sampling — and pooled: per condition the CER of every text of every draw, with a 95% bootstrap interval over
    (draw, writer) pairs (the texts a writer's prime conditions move together), and each draw's Spearman ρ and
    mean style distance with their mean, min and max.  One draw's CER moves by a point or two with its texts;
    the pooled one is the estimate to hold against a bar."""
    from .evaluate import edit_distance
    from .generate import check_number, check_seed

    draws = check_number("style: draws (--draws)", draws, 1, 100, integer=True, hint="; draws of texts, primes and sampling")
    seed = check_seed("style: seed (--seed)", seed)
    runs = [measure(model, seed=seed + k, **kw) for k in range(draws)]
    conds = list(runs[0]["cer"])
    cer_pooled = {}
    for c in conds:
        edits, chars = [], []
        for r in runs:
            for row in r["writers"]:
                edits.append(sum(edit_distance(p, t) for p, t in zip(row["read"][c], r["texts"])))
                chars.append(sum(max(len(t), 1) for t in r["texts"]))
        cer_pooled[c] = {"cer": sum(edits) / sum(chars), "cer_ci95": list(bootstrap_ci(edits, chars, seed=seed)),
                         "texts": len(edits) * len(runs[0]["texts"]), "clusters": len(edits)}
    spread = lambda vals: {"mean": float(np.mean(vals)), "min": float(np.min(vals)), "max": float(np.max(vals))}  # noqa: E731
    rho = {c: {k: spread([r["summary"]["spearman"][c][k]["rho"] for r in runs]) for k in CORRELATED}
           for c in runs[0]["summary"]["spearman"]}
    dist = {c: spread([r["summary"]["distance"][c]["mean"] for r in runs]) for c in runs[0]["summary"]["distance"]}
    keep = ("model", "bias", "words", "hands", "recognizer", "recognizer_trained_on", "recognizer_sha256", "beam_width",
            "candidates", "reranker")
    return {"what": "style carry over draws", **{k: runs[0][k] for k in keep}, "seeds": [r["seed"] for r in runs],
            "pooled": {"cer": cer_pooled, "spearman": rho, "distance": dist}, "draws": runs,
            "seconds": {"total": sum(r["seconds"]["total"] for r in runs)}}


def _unused(pool: Sequence[str], prime_text: str, texts: Sequence[str]) -> list[str]:
    used = set(prime_text.split()) | {w for t in texts for w in t.split()}
    return sorted(set(pool) - used)


def _more_prime_texts(pool: Sequence[str], prime_text: str, texts: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` further prime lines of 2-3 words each, of words of ``pool`` that are neither in the prime nor in the
    target texts, drawn with ``seed``."""
    if n == 0:
        return []
    rest = _unused(pool, prime_text, texts)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9A1]))
    sizes = [int(k) for k in rng.integers(2, 4, size=n)]
    if len(rest) < sum(sizes):
        raise EvaluateError(f"style: {len(rest)} words are left after the prime and the targets, too few for "
                            f"--prime-lines {n + 1} ({sum(sizes)} more words); ask for fewer")
    order = [rest[i] for i in rng.permutation(len(rest))]
    out, pos = [], 0
    for k in sizes:
        out.append(" ".join(order[pos : pos + k]))
        pos += k
    return out


def _fit_texts(pool: Sequence[str], prime_text: str, texts: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` words of ``pool`` that are neither in the prime nor in the target texts, drawn with ``seed``: what
    each writer gives the style fit, as a learner gives the canvas."""
    rest = _unused(pool, prime_text, texts)
    if len(rest) < n:
        raise EvaluateError(f"style: {len(rest)} words are left for the style fit after the prime and the targets, "
                            f"fewer than --fit-words {n}; ask for fewer")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xF17]))
    return [rest[i] for i in sorted(rng.choice(len(rest), size=n, replace=False))]


# ----------------------------------------------------------------------------------------------------------
# printing and the command line

_HANDS = {"held-out": "held-out writers", "training": "writers drawn as the training lines are (the control)",
          "given": "given writers"}
_SHORT = {"slant": "slant", "lifts_per_char": "lifts/char", "log_width_per_char": "log w/char"}


def format_carry(result: Mapping) -> str:
    """The plain-text table: one row per writer (reference / primed / unprimed features and style distances),
    then the summary rows (Spearman ρ per condition, mean distance, CER)."""
    conds = [c for c in result["summary"]["distance"]]
    head = ["writer", "kind"] + [f"{_SHORT[k]} ref/" + "/".join(c[:3] for c in conds) for k in CORRELATED]
    head += ["dist " + "/".join(c[:3] for c in conds), "CER " + "/".join(["ref"] + [c[:3] for c in conds])]
    body = []
    for r in result["writers"]:
        cells = [r["name"], r["kind"]]
        cells += ["/".join(f"{r[c][k]:+.2f}" if k == "slant" or k.startswith("log") else f"{r[c][k]:.2f}"
                           for c in ["reference"] + conds) for k in CORRELATED]  # fmt: skip
        cells.append("/".join(f"{r['distance'][c]:.2f}" for c in conds))
        got = r.get("cer") or {}
        cells.append("/".join(f"{100 * got[c]:.0f}%" if c in got else "-" for c in ["reference"] + conds))
        body.append(cells)
    s = result["summary"]
    body.append(["-"] * len(head))
    for c in conds:
        rho = s["spearman"][c]
        cells = [f"{c}: ρ / mean", ""] + [_fmt_ci(rho[k]["rho"], rho[k]["ci95"], pct=False) for k in CORRELATED]
        d = s["distance"][c]
        read = result.get("cer", {}).get(c)
        cells += [_fmt_ci(d["mean"], d["ci95"], pct=False), _fmt_ci(read["cer"], read["cer_ci95"]) if read else ""]
        body.append(cells)
    if "cer" in result:
        body.append(["reference: CER", ""] + [""] * len(CORRELATED) + ["", _fmt_ci(result["cer"]["reference"]["cer"], result["cer"]["reference"]["cer_ci95"])])
    widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
    body = [["-" * w for w in widths] if b[0] == "-" else b for b in body]
    line = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    out = [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]
    out.append("summary rows: Spearman ρ across writers (reference vs output) in the feature columns, the mean style "
               "distance and the CER of all texts in the last two; [95% bootstrap CI: writers for ρ and distance, "
               "texts for CER]")
    for c, g in (s.get("distance_gains") or ({"primed": s["distance_gain"]} if "distance_gain" in s else {})).items():
        out.append(f"style distance unprimed − {c} (paired over writers): {_fmt_ci(g['mean'], g['ci95'], pct=False)}"
                   f"  (features {', '.join(s['distance'][conds[0]]['features'])}, each in units of the references' "
                   "across-writer std)")
    return "\n".join(out)


def format_draws(result: Mapping) -> str:
    """One line per draw (its ρ, mean style distance and CER per condition), then the pooled line."""
    pooled = result["pooled"]
    conds = list(pooled["cer"])
    rho_conds = list(pooled["spearman"])
    lines = []
    for r in result["draws"]:
        s = r["summary"]
        rho = "  ".join(f"{c[:3]} ρ " + "/".join(f"{s['spearman'][c][k]['rho']:+.2f}" for k in CORRELATED) for c in rho_conds)
        dist = "/".join(f"{s['distance'][c]['mean']:.2f}" for c in rho_conds)
        cers = "/".join(f"{100 * r['cer'][c]['cer']:.1f}%" for c in conds)
        lines.append(f"seed {r['seed']:>3}  {rho}  distance {dist}  CER {cers}")
    lines.append(f"CER columns: {'/'.join(conds)}; ρ: {', '.join(_SHORT[k] for k in CORRELATED)}")
    for c in rho_conds:
        lines.append(f"{c}: ρ mean [min, max] " + ", ".join(
            f"{_SHORT[k]} {pooled['spearman'][c][k]['mean']:+.2f} [{pooled['spearman'][c][k]['min']:+.2f}, "
            f"{pooled['spearman'][c][k]['max']:+.2f}]" for k in CORRELATED)
            + f"; distance {pooled['distance'][c]['mean']:.2f}")
    for c in conds:
        p = pooled["cer"][c]
        lines.append(f"pooled CER, {c}: {_fmt_ci(p['cer'], p['cer_ci95'])} over {p['texts']} texts "
                     f"({len(result['draws'])} draws; interval over draw-writer pairs)")
    return "\n".join(lines)


def configure(p) -> None:
    """The arguments of ``handwriting evaluate style`` (``p``: its sub-parser)."""
    p.add_argument("--model", required=True, help="pretrained name or checkpoint path of a text-conditioned model")
    p.add_argument("--texts", type=int, default=8, metavar="N", help="target texts per writer (default 8)")
    p.add_argument("--bias", type=float, default=0.5, help="sampling bias (default 0.5)")
    p.add_argument("--words", choices=("heldout", "random"), default="heldout",
                   help="'heldout': held-out bigbank words, 12 writers (default; needs bigbank); 'random': random "
                        "words outside bigbank, the 8 synthetic writers only")
    p.add_argument("--hands", choices=("held-out", "training"), default="held-out",
                   help="'held-out': the hands no model here trained on (default); 'training': a control, hands drawn "
                        "as the training lines are (2 per font and, with held-out words, 4 restyled real hands)")
    p.add_argument("--seed", type=int, default=0, help="seed of the texts, the writers and the sampling (default 0)")
    p.add_argument("--draws", type=int, default=1, metavar="N",
                   help="measure N draws (seeds --seed … --seed + N − 1) and pool their CER (default 1)")
    p.add_argument("--recognizer", default=None, help="recognizer checkpoint or pretrained name (default recognizer-bigbank)")
    p.add_argument("--beam", type=int, default=1, help="CTC beam width (1: greedy decoding, the default)")
    p.add_argument("--fit-words", type=int, default=0, metavar="N",
                   help="also fit a style file on N further words of each writer and write with it (the 'styled' "
                        "condition; default 0: off; 30 is the five-minute path)")
    p.add_argument("--fit-minutes", type=float, default=5.0, help="wall-time budget of each style fit (default 5)")
    p.add_argument("--fit-steps", type=int, default=None, help="step budget of each style fit (default: fit_style's)")
    p.add_argument("--prime-lines", type=int, default=1, metavar="N",
                   help="prime with N lines of each writer, 2-3 words each (default 1): the writing continues the "
                        "last; the Graves network rehearses them all for the hand's rate of pen lifts")
    p.add_argument("--candidates", type=int, default=1, metavar="N",
                   help="best-of-N decoding: the model writes each piece N times and keeps what --reranker reads best "
                        "(score it with another --recognizer; default 1: plain sampling)")
    p.add_argument("--reranker", default=None, help="the recognizer that reranks candidates (default recognizer-bigbank)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the full results as JSON")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args) -> int:
    """``handwriting evaluate style`` (called by :func:`handwriting.evaluate.run`, which has checked ``--json``
    and set the threads)."""
    kw = dict(n_texts=args.texts, bias=args.bias, words=args.words, recognizer=args.recognizer, beam_width=args.beam,
              device=args.device, fit_words=args.fit_words, fit_minutes=args.fit_minutes, fit_steps=args.fit_steps,
              candidates=args.candidates, reranker=args.reranker, hands=args.hands, prime_lines=args.prime_lines)  # fmt: skip
    many = args.draws != 1
    r = measure_draws(args.model, args.draws, seed=args.seed, **kw) if many else measure(args.model, seed=args.seed, **kw)
    decoding = "" if r["candidates"] == 1 else f", best of {r['candidates']} reranked by {r['reranker']}"
    if many:
        print(f"style carry of {r['model']} over {len(r['seeds'])} draws (bias {r['bias']:g}, seeds {r['seeds'][0]}–"
              f"{r['seeds'][-1]}{decoding}): {len(r['draws'][0]['writers'])} {_HANDS[r['hands']]}, read by {r['recognizer']}")
        print(format_draws(r))
        print(f"time: {r['seconds']['total']:.1f} s")
    else:
        print(f"style carry of {r['model']} (bias {r['bias']:g}, seed {r['seed']}{decoding}): {len(r['writers'])} "
              f"{_HANDS[r['hands']]}, prime {r['prime_text']!r}, {len(r['texts'])} target texts of {r['words']}")
        print(f"CER read by {r['recognizer']} (trained on {r['recognizer_trained_on']} hands); features: mean over a "
              "writer's samples, ref = the writer's own writing of the texts")
        print(format_carry(r))
        sec = r["seconds"]
        fit = f", style fits {sec['fitting']:.1f}" if sec.get("fitting") else ""
        print(f"time: {sec['total']:.1f} s (writers {sec['writers']:.1f}, model {sec['model']:.1f}{fit}, reading "
              f"{sec['reading']:.1f})")
    if args.json:
        _write_json(args.json, _jsonable(r))
    return 0


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
