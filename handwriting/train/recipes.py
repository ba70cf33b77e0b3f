"""One recipe per model kind: its data set-up, its model of each size and its training defaults.

:func:`build_training` turns the command line's options into ``(model, train_loader, valid_loader,
train_config, meta, sample_fn)`` for graves, graves-prediction, transformer, mdn-transformer and recognizer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import checkpoint as ckpt
from .._io import portable_arg, portable_path
from ..datasets.download import sha256_file
from ..datasets.jsonink import bigbank_pen
from ..datasets.sources import is_cursive_data, is_many_hands, load_data
from ..datasets.writers import ManyHands, split_lines
from ..datasets.torch_data import Alphabet, BucketBatchSampler, StitchedLines, StrokeDataset, make_loader
from ..models.recognizer import Recognizer, RecognizerConfig, prepare_offsets
from ..strokes import Normalizer
from .config import TrainConfig, TrainError
from .loop import SampleFn

MODEL_KINDS = ("graves", "graves-prediction", "transformer", "mdn-transformer", "recognizer")


SIZES: dict[str, dict[str, dict]] = {
    "graves": {
        "tiny": dict(hidden=32, layers=1, mixtures=5, window_mixtures=3),
        "small": dict(hidden=256, layers=2, mixtures=20, window_mixtures=10),
        "paper": dict(hidden=400, layers=3, mixtures=20, window_mixtures=10),  # Graves (2013) §4-5
    },
    "transformer": {
        "tiny": dict(n_layer=2, d_model=32, n_head=2, block_size=400),
        "small": dict(n_layer=4, d_model=64, n_head=4, block_size=1050),
        "paper": dict(n_layer=5, d_model=64, n_head=4, block_size=1500),  # Greydanus & Wimpee (2025)
    },
    "mdn-transformer": {
        "tiny": dict(n_layer=2, d_model=32, n_head=2, block_size=600, num_mixtures=5),
        "small": dict(n_layer=4, d_model=64, n_head=4, block_size=1200, num_mixtures=20),
        "paper": dict(n_layer=5, d_model=128, n_head=4, block_size=1500, num_mixtures=20),
    },
}


#: the recognizer's recipe (Graves-style BiLSTM + CTC on bigbank's words and the synthetic writer's): the one
#: source of its defaults, for `handwriting train recognizer` and :func:`build_recognizer_training` alike
RECOGNIZER_DEFAULTS: dict[str, Any] = dict(
    steps=4000, batch_size=32, lr=2e-3, seed=0, hidden=128, layers=2, synthetic=6000, repeat_real=2,
    valid_fraction=0.1, split_seed=0, line_share=0.1, words_per_line=2, eval_every=500,
)

#: defaults per model kind where they differ from the command line's general ones (DEFAULTS in command.py)
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "recognizer": {k: RECOGNIZER_DEFAULTS[k] for k in ("steps", "batch_size", "lr", "synthetic", "eval_every")},
}

#: ... and on bigbank-like data (bigbank, synthbank, hands): the recipes measured on 2 CPU cores.  graves: a
#: legible network from scratch in under an hour (README, learning curves); graves-prediction: the shipped
#: graves-prediction-bigbank.  The learning-rate steps scale with --steps when only --steps is given.
CURSIVE_DEFAULTS: dict[str, dict[str, Any]] = {
    "graves": dict(steps=2000, lr=2e-3, warmup=100, schedule="step", step_size=1000, words_per_line="1-3",
                   eval_every=200, checkpoint_every=200),
    "graves-prediction": dict(steps=1000, schedule="step", step_size=700, words_per_line="1", valid_lines=128),
}


def kind_defaults(kind: str | None, data: str) -> dict[str, Any]:
    """The defaults of ``handwriting train KIND --data DATA`` that differ from the general ones."""
    return {**KIND_DEFAULTS.get(kind or "", {}), **(CURSIVE_DEFAULTS.get(kind or "", {}) if is_cursive_data(data) else {})}

SAMPLE_TEXTS = ["hello world", "handwriting"]


def _words_per_line(spec: Any, data: str) -> int | tuple[int, int]:
    if spec is None:
        return (2, 4) if is_cursive_data(data) else 1
    if isinstance(spec, (int, list, tuple)):
        return tuple(spec) if isinstance(spec, (list, tuple)) else int(spec)
    s = str(spec)
    try:
        if "-" in s:
            lo, hi = (int(x) for x in s.split("-", 1))
            return (lo, hi)
        return int(s)
    except ValueError:
        raise TrainError(f"--words-per-line {spec!r}: give a number (3) or a range (2-4)") from None


def _train_config(opts: dict, kind: str, native_clip: bool = False) -> TrainConfig:
    """The :class:`TrainConfig` for the command line's options.  Clipping defaults to Graves' for the
    Graves networks trained with RMSProp (his recipe) when the model can clip its own derivatives
    (``set_gradient_clipping``), else to the gradient norm."""
    graves = kind.startswith("graves")
    optimizer = opts.get("optimizer") or ("adamw" if kind in ("transformer", "mdn-transformer") else "adam")
    if opts.get("lr") is not None:
        lr = float(opts["lr"])
    elif optimizer == "rmsprop":
        lr = 1e-4  # Graves (2013)
    elif kind == "transformer":
        lr = 1e-2  # Greydanus & Wimpee (2025): AdamW 1e-2, weight decay 1e-4, ×0.5 every 20k of 125k steps
    else:
        lr = 1e-3
    steps = None if opts.get("epochs") and not opts.get("steps") else int(opts["steps"])
    return TrainConfig(
        steps=steps,
        epochs=opts.get("epochs"),
        batch_size=int(opts["batch_size"]),
        lr=lr,
        optimizer=optimizer,
        weight_decay=float(opts["weight_decay"]) if opts.get("weight_decay") is not None else (1e-4 if optimizer == "adamw" else 0.0),
        schedule=opts.get("schedule") or ("step" if kind in ("transformer", "mdn-transformer") else "none"),
        step_size=int(opts.get("step_size") or max(int(opts["steps"] or 1000) // 6, 1)),
        gamma=float(opts["gamma"]) if opts.get("gamma") is not None else 0.5,
        # fine-tuning (--init) starts Adam's moment estimates from zero: its first steps would move every weight by
        # about the full learning rate, which undoes a trained model; a warm-up lets the estimates settle first
        warmup_steps=int(opts["warmup"]) if opts.get("warmup") is not None else (200 if opts.get("init") else 0),
        # Graves' derivative clipping belongs to his RMSProp recipe; with Adam the gradient norm is clipped (as the
        # shipped models were trained): fine-tuning graves-synthesis-bigbank with Adam 3e-4 and Graves' clipping
        # worsened its validation NLL (-1.78 -> -1.55 nats/point in 400 steps), with norm clipping it improved
        clip=opts.get("clip") or ("graves" if graves and native_clip and optimizer == "rmsprop" else "norm"),
        clip_norm=float(opts["clip_norm"]) if opts.get("clip_norm") is not None else (10.0 if graves else 1.0),
        loss_unit=opts.get("loss_unit") or ("sequence" if optimizer == "rmsprop" else "point"),
        amp=opts["amp"],
        device=opts["device"],
        eval_every=opts.get("eval_every"),
        sample_every=opts.get("sample_every"),
        checkpoint_every=opts.get("checkpoint_every"),
        keep_checkpoints=bool(opts.get("keep_checkpoints")),
        log_every=int(opts["log_every"]),
        out_dir=str(opts["out"]),
        seed=int(opts["seed"]),
        num_workers=int(opts["num_workers"]),
        wandb=bool(opts["wandb"]),
        progress=bool(opts["progress"]),
    )


def _render_sample_images(written, tag: str) -> dict:
    from ..render import render_image

    images = {f"samples/{tag}": render_image(written.offsets, height=64 * max(len(written.lines), 1))}
    if written.internals and "phi" in written.internals[0]:
        from matplotlib.figure import Figure

        d = written.internals[0]
        fig = Figure(figsize=(6, 2.5), dpi=80)
        ax = fig.add_subplot(111)
        ax.imshow(np.asarray(d["phi"]).T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
        text = d.get("full_text", d.get("text", ""))
        ax.set_yticks(range(len(text)), list(text), fontsize=6)
        ax.set_xlabel("time step")
        ax.set_title(f"window weights φ: {text!r}", fontsize=8)
        fig.tight_layout()
        images[f"window/{tag}"] = fig
    elif written.internals and "attention" in written.internals[0]:
        from matplotlib.figure import Figure

        att = np.asarray(written.internals[0]["attention"])  # (layers, heads, L, U)
        fig = Figure(figsize=(6, 2.5), dpi=80)
        ax = fig.add_subplot(111)
        ax.imshow(att[-1].mean(0).T, aspect="auto", origin="lower", interpolation="nearest")
        ax.set_title("cross-attention (last layer, mean over heads)", fontsize=8)
        fig.tight_layout()
        images[f"attention/{tag}"] = fig
    return images


def text_sample_fn(texts: list[str]) -> SampleFn:
    """Sample images for text-conditioned models (handwriting + the φ window or cross-attention map)."""

    def fn(model: nn.Module, step: int) -> dict:
        from ..generate import write

        w = write("\n".join(texts), model=model, bias=0.5, seed=step, return_internals=True, unknown="replace")
        return _render_sample_images(w, "text")

    return fn


def prediction_sample_fn(steps: int = 400) -> SampleFn:
    def fn(model: nn.Module, step: int) -> dict:
        from ..render import render_image
        from ..strokes import Normalizer

        res = model.sample(n=2, steps=steps, seed=step, bias=0.5)
        norm = getattr(model, "normalizer", None) or Normalizer()
        return {f"samples/unconditional_{i}": render_image(norm.denormalize(s), height=64) for i, s in enumerate(res.sequences())}

    return fn


def _points_per_char(samples, keep: float = 1.0, n: int = 500) -> float | None:
    """Points per (non-space) character of the first ``n`` samples after keeping ``keep`` of their points
    (recorded with a model so that a priming sample can be thinned to the density it was trained on)."""
    pts = sum(len(s.offsets) for s in samples[:n])
    chars = sum(len(s.text.replace(" ", "")) for s in samples[:n])
    return round(keep * pts / chars, 2) if chars else None


def _kappa_scale(ds, n: int = 200) -> float:
    """Characters per point over the first ``n`` items (Graves' window then starts near the right pace)."""
    items = [ds[i] for i in range(min(n, len(ds)))]
    points = sum(len(it["x"]) for it in items)
    chars = sum(len(it["text"]) for it in items)
    return round(chars / points, 4) if points and chars else 1.0 / 25.0


def _graves_setup(opts, kind, train_s, valid_s, info):
    from ..models.graves import GravesConfig, PredictionNetwork, SynthesisNetwork

    seed = int(opts["seed"])
    wpl = _words_per_line(opts.get("words_per_line"), str(opts["data"]))
    multi = wpl != 1
    if multi:
        if is_many_hands(opts["data"]):  # every line in another hand; other writers' lines as they are
            (tw, tl), (vw, vl) = split_lines(train_s), split_lines(valid_s)
            mix = {k: float(opts[k]) for k in ("real_share", "ink_lifts") if opts.get(k) is not None}
            train_items = ManyHands(tw, wpl, num_lines=int(opts["lines"]), seed=seed, lines=tl, **mix)
            valid_items = ManyHands(vw, wpl, num_lines=int(opts["valid_lines"]), seed=seed + 1,
                                    lines=vl[: int(opts["valid_lines"]) // 2])
        else:
            train_items = StitchedLines(train_s, wpl, num_lines=int(opts["lines"]), seed=seed)
            valid_items = StitchedLines(valid_s, wpl, num_lines=int(opts["valid_lines"]), seed=seed + 1)
    else:
        train_items, valid_items = train_s, valid_s
    alphabet = _alphabet_for(opts, train_s, valid_s, multi)
    init = opts.get("_init")
    # bigbank is sampled densely (~50 points per character); dropping 65% of each stroke's interior points
    # (Greydanus & Wimpee's preprocessing) brings it near IAM-OnDB's density and makes training ~2.5x faster
    down = opts.get("downsample")
    down = (0.65 if is_cursive_data(opts["data"]) else None) if down is None else (float(down) or None)
    augment = generator_augment(opts)
    norm = init[0].normalizer if init is not None and init[0].normalizer is not None else "fit"
    train_ds = StrokeDataset(train_items, alphabet, normalizer=norm, augment=augment, downsample=down, seed=seed)
    valid_ds = StrokeDataset(valid_items, alphabet, normalizer=train_ds.normalizer, downsample=down, seed=seed)
    size = dict(SIZES["graves"][opts["size"]])
    for key in ("hidden", "layers", "mixtures", "window_mixtures"):
        if opts.get(key) is not None:
            size[key] = int(opts[key])
    # κ moves by kappa_scale · exp(κ̂) per point: start it near one character per (points per character)
    cls = SynthesisNetwork if kind == "graves" else PredictionNetwork
    if init is None:
        size.setdefault("kappa_scale", _kappa_scale(train_ds))
        config = GravesConfig(alphabet_size=len(alphabet), **size)
    else:
        config = _init_config(opts, None, cls, {k: k for k in ("hidden", "layers", "mixtures", "window_mixtures")})
    torch.manual_seed(seed)
    model = cls(config)
    model.alphabet, model.normalizer = alphabet, train_ds.normalizer
    bs, workers = int(opts["batch_size"]), int(opts["num_workers"])
    train_loader = make_loader(train_ds, bs, num_workers=workers, seed=seed)
    valid_loader = make_loader(valid_ds, bs, shuffle=False)
    info.update(words_per_line=wpl, train_items=len(train_ds), valid_items=len(valid_ds), downsample=down)
    texts = [t for t in SAMPLE_TEXTS if all(c in alphabet for c in t)] or [alphabet.chars[:12]]
    sample_fn = text_sample_fn(texts) if kind == "graves" else prediction_sample_fn()
    return model, train_loader, valid_loader, {"alphabet": alphabet, "normalizer": train_ds.normalizer}, sample_fn


def _transformer_setup(opts, kind, train_s, valid_s, info):
    from ..datasets.tokens import TokenDataset, collate_tokens
    from ..models.tokenizer import PolarTokenizer, tokenizer_from_dict
    from ..models.transformer import CursiveTransformer, CursiveTransformerConfig

    seed = int(opts["seed"])
    wpl = _words_per_line(opts.get("words_per_line"), str(opts["data"]))
    wpl_n = wpl[1] if isinstance(wpl, tuple) else wpl
    init = opts.get("_init")
    alphabet = _alphabet_for(opts, train_s, valid_s, wpl_n > 1)
    if init is not None:
        tok = tokenizer_from_dict(init[0].config.tokenizer)
    else:
        tok = PolarTokenizer()
        if not is_cursive_data(opts["data"]):
            tok.fit_scale(train_s)  # bring other data to bigbank's word height, for which the bins were made
    size = dict(SIZES["transformer"][opts["size"]])
    for key in ("d_model", "n_layer", "n_head", "block_size"):
        if opts.get(key) is not None:
            size[key] = int(opts[key])
    text_len = max(50, max(len(s.text) for s in train_s + valid_s) * wpl_n + wpl_n)
    config = CursiveTransformerConfig(
        vocab_size=tok.vocab_size, text_len=text_len, alphabet_size=len(alphabet), tokenizer=tok.to_dict(),
        end_marker=opts.get("end_marker") is not False, **size
    )
    if init is not None:  # the starting model's configuration; the marker only when asked for
        config = _init_config(opts, config, CursiveTransformer, {k: k for k in ("d_model", "n_layer", "n_head", "block_size")})
        config = dataclasses.replace(config, end_marker=config.end_marker or opts.get("end_marker") is True)
        text_len = config.text_len
    config = _with_dropout(opts, config)
    common = dict(tokenizer=tok, alphabet=alphabet, block_size=config.block_size, text_len=text_len, words_per_line=wpl_n)
    # bigbank's words augmented are put back on its recorder's lattice, which the tokens show
    pen = bigbank_pen if is_cursive_data(opts["data"]) else None
    train_ds = TokenDataset(
        train_s, downsample=(0.65, 0.1), augment=generator_augment(opts), pen=pen, seed=seed, **common
    )
    valid_ds = TokenDataset(valid_s, downsample=0.65, seed=seed + 1, **common)
    torch.manual_seed(seed)
    model = CursiveTransformer(config)
    model.alphabet = alphabet
    bs, workers = int(opts["batch_size"]), int(opts["num_workers"])
    lengths = np.array([len(s.offsets) for s in train_s])
    train_loader = torch.utils.data.DataLoader(
        train_ds, batch_sampler=BucketBatchSampler(lengths, bs, seed=seed), collate_fn=collate_tokens, num_workers=workers
    )
    valid_loader = torch.utils.data.DataLoader(valid_ds, batch_size=bs, shuffle=False, collate_fn=collate_tokens)
    info.update(words_per_line=wpl_n, tokenizer_scale=tok.scale, points_per_char=_points_per_char(train_s, keep=0.35))
    texts = [t for t in SAMPLE_TEXTS if all(c in alphabet for c in t)] or [alphabet.chars[:12]]
    return model, train_loader, valid_loader, {"alphabet": alphabet}, text_sample_fn(texts)


def mdn_transformer_setup(opts, kind, train_s, valid_s, info):
    """The MDN transformer (the sketch transformer's design, text-conditioned): the data as
    normalised offsets (:class:`~handwriting.datasets.torch_data.StrokeDataset`, stitched into lines for word
    data, downsampled like the cursive transformer's so sequences fit the context), a text-conditioned
    MDN transformer of the requested size."""
    from ..models.mdn_transformer import MDNTransformer, MDNTransformerConfig

    seed = int(opts.get("seed") or 0)
    wpl = _words_per_line(opts.get("words_per_line"), str(opts.get("data", "synthetic")))
    multi = wpl != 1
    wpl_n = wpl[1] if isinstance(wpl, tuple) else wpl
    text_len = max(50, max(len(s.text) for s in list(train_s) + list(valid_s)) * wpl_n + wpl_n)
    if opts.get("_init") is not None:
        text_len = opts["_init"][0].config.text_len
    if multi:
        train_items = StitchedLines(train_s, wpl, num_lines=int(opts.get("lines") or 20000), seed=seed,
                                    max_chars=text_len)
        valid_items = StitchedLines(valid_s, wpl, num_lines=int(opts.get("valid_lines") or 256), seed=seed + 1,
                                    max_chars=text_len)
    else:
        train_items, valid_items = train_s, valid_s
    init = opts.get("_init")  # --init: fine-tune that model (its alphabet, normalisation and configuration)
    alphabet = _alphabet_for(opts, list(train_s), list(valid_s), multi)
    size = dict(SIZES["mdn-transformer"][opts.get("size") or "small"])
    for key in ("d_model", "n_layer", "n_head", "block_size", "mixtures"):
        if opts.get(key) is not None:
            size["num_mixtures" if key == "mixtures" else key] = int(opts[key])
    norm = init[0].normalizer if init is not None else "fit"
    train_ds = StrokeDataset(train_items, alphabet, normalizer=norm, downsample=(0.65, 0.1),
                             augment=generator_augment(opts), seed=seed)
    valid_ds = StrokeDataset(valid_items, alphabet, normalizer=train_ds.normalizer, downsample=0.65, seed=seed)
    config = MDNTransformerConfig(alphabet_size=len(alphabet), text_len=text_len, **size)
    config = _with_dropout(opts, _init_config(opts, config, MDNTransformer, {k: k for k in ("d_model", "n_layer", "n_head", "block_size")}))
    torch.manual_seed(seed)
    model = MDNTransformer(config)
    model.alphabet, model.normalizer = alphabet, train_ds.normalizer
    bs, workers = int(opts.get("batch_size") or 32), int(opts.get("num_workers") or 0)
    train_loader = make_loader(train_ds, bs, num_workers=workers, seed=seed)
    valid_loader = make_loader(valid_ds, bs, shuffle=False)
    pts = sum(len(s.offsets) for s in train_s[:500])
    chars = sum(len(s.text.replace(" ", "")) for s in train_s[:500])
    info.update(words_per_line=wpl, train_items=len(train_ds), valid_items=len(valid_ds),
                points_per_char=round(0.35 * pts / chars, 2) if chars else None)  # after the 65% downsampling
    texts = [t for t in SAMPLE_TEXTS if all(c in alphabet for c in t)] or [alphabet.chars[:12]]
    return model, train_loader, valid_loader, {"alphabet": alphabet, "normalizer": train_ds.normalizer}, text_sample_fn(texts)


# ----------------------------------------------------------------------------------------------------------
# the recognizer (bigbank words + stitched pairs + synthetic-writer text, augmented)


def generator_augment(opts):
    """``--augment`` for the generators: the cursive transformer's scale and rotation ranges with the shear
    centred on zero — a one-sided shear would slant everything the model writes away from its writer's hand."""
    from ..strokes import AugmentConfig

    return AugmentConfig(shear=(-0.1, 0.1)) if opts.get("augment") else None


#: augmentation of the recognizer's training data: wider than the generators' (it must read any writer)
def default_augment():
    from ..strokes import AugmentConfig

    return AugmentConfig(shear=(-0.45, 0.35), scale_x=(0.8, 1.2), scale_y=(0.85, 1.15), rotate=(-0.08, 0.08), drop=0.1)


@dataclass
class RecognizerData:
    """What :func:`recognizer_data` builds: data sets, the normaliser and the raw held-out words."""

    train: "torch.utils.data.Dataset"
    valid: "torch.utils.data.Dataset"
    normalizer: Normalizer
    valid_words: list  # raw held-out bigbank samples (word-disjoint from every training text)
    train_texts: set
    info: dict


def recognizer_data(
    config: RecognizerConfig | None = None,
    bigbank: str | None = None,
    valid_fraction: float = 0.1,
    split_seed: int = 0,
    repeat_real: int = 2,
    synthetic: int = 6000,
    lines: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
    augment=None,
    hands: bool = False,
    synthbank: str | None = None,
    iam: str | None = None,
    words_per_line: int | tuple[int, int] = 2,
) -> RecognizerData:
    """The recognizer's data: bigbank words split word-disjointly (:func:`word_disjoint_split`, the same
    ``valid_fraction``/``split_seed`` as the generators use by default), the training words ``repeat_real``
    times (each copy gets its own augmentation), lines of ``words_per_line`` (N or (LO, HI)) words stitched
    from training words (``lines`` × the number of training words), and ``synthetic`` random words drawn by
    random synthetic writers (none of them a held-out word; the share ``lines`` of them extended into lines as
    long).  Everything is resampled once up front (``config.spacing``); the training set is augmented per item
    and epoch (:func:`default_augment`).

    ``hands``: a reader for any hand (:mod:`~handwriting.datasets.writers`): synthbank's training words join
    bigbank's, the ``repeat_real`` copies of every real word are each restyled into a random training hand
    (slant, width, height, size, smoothness), the stitched lines are drawn from all real words and each
    restyled into one such hand (a reader must find the spaces between words in every hand), and the synthetic
    words are written by random writers of every single-stroke font.  Validation stays bigbank's held-out
    words; no held-out hand is used.  ``iam`` (with ``hands``; ``--data hands+iam:PATH``): IAM-OnDB's training
    lines join too, in their writers' own hands (:func:`~handwriting.datasets.writers.match_ink`), those whose
    text the reader's alphabet holds."""
    from ..datasets.jsonink import load_bigbank
    from ..datasets.synthetic import random_words, synthesize
    from ..datasets.torch_data import StrokeDataset, word_disjoint_split
    from ..strokes import stitch

    config = config or RecognizerConfig()
    alphabet = Alphabet(config.alphabet)
    words = load_bigbank(bigbank, limit=limit)
    train_w, valid_w = word_disjoint_split(words, valid_fraction, seed=split_seed)
    held_out = {s.text for s in valid_w}
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x2EC0]))

    def prep(samples):
        return [s.replace(offsets=prepare_offsets(s.offsets, config.spacing, where=str(s.source))) for s in samples]

    lo, hi = (words_per_line, words_per_line) if isinstance(words_per_line, int) else tuple(words_per_line)
    if not 1 <= lo <= hi:
        raise TrainError(f"recognizer: words_per_line {words_per_line!r} must be N or LO-HI with 1 <= LO <= HI")

    def n_words() -> int:  # a fixed count draws nothing, so the two-word default keeps its data
        return lo if lo == hi else int(rng.integers(lo, hi + 1))

    def stitched(pool) -> list:
        return [stitch([pool[i] for i in rng.integers(len(pool), size=n_words())], rng=rng)
                for _ in range(int(round(lines * len(pool))))]

    pairs = [] if hands else stitched(train_w)
    syn_texts = [w for w in random_words(int(synthetic * 1.1) + 10, seed=seed) if w not in held_out][:synthetic]
    words_only, used = list(syn_texts), 0
    for k in range(int(round(lines * len(syn_texts)))):  # synthetic lines too, their other words from the end
        extra = n_words() - 1
        syn_texts[k] = " ".join([words_only[k], *(words_only[-1 - (used + j) % len(words_only)] for j in range(extra))])
        used += extra
    if not hands:
        syn = synthesize(syn_texts, writer=None, seed=seed) if syn_texts else []
        train_p = prep(train_w)
        normalizer = Normalizer.fit([s.offsets[1:] for s in train_p if len(s.offsets) > 1])
        train_all = train_p * max(int(repeat_real), 1) + prep(pairs) + prep(syn)
    else:
        from ..datasets.download import dataset_path
        from ..datasets.jsonink import load_synthbank
        from ..datasets.synthetic import SyntheticWriter
        from ..datasets.writers import random_font_style, random_ink_style

        sb_train, sb_valid = word_disjoint_split(load_synthbank(synthbank or dataset_path("synthbank"), limit=limit),
                                                 valid_fraction, seed=split_seed)  # fmt: skip
        held_out |= {s.text for s in sb_valid}
        real = train_w + [s for s in sb_train if s.text not in held_out]
        restyled = [random_ink_style(rng, f"ink-{k}").apply(s) for k, s in enumerate(real * max(int(repeat_real), 1))]
        pairs = [random_ink_style(rng, f"ink-line-{k}").apply(s) for k, s in enumerate(stitched(real))]
        syn = [SyntheticWriter(random_font_style(rng, f"font-{k}"), seed=seed + k).write(t, unknown="replace")
               for k, t in enumerate(syn_texts)]  # fmt: skip
        other: list = []
        if iam:
            from ..datasets.iam import load_iam
            from ..datasets.writers import match_ink

            other = [s for s in load_iam(iam, "train", limit=limit) if set(s.text) <= set(config.alphabet)]
            other = match_ink(other, real)
        train_p = prep(real)
        normalizer = Normalizer.fit([s.offsets[1:] for s in train_p if len(s.offsets) > 1])
        train_all = train_p + prep(restyled) + prep(pairs) + prep(syn) + prep(other)
    aug = default_augment() if augment is None else (augment or None)
    train_ds = StrokeDataset(train_all, alphabet, normalizer=normalizer, augment=aug, seed=seed)
    valid_ds = StrokeDataset(prep(valid_w), alphabet, normalizer=normalizer)
    info = {
        "bigbank_words": len(words), "train_words": len(train_w), "valid_words": len(valid_w),
        "valid_fraction": valid_fraction, "split_seed": split_seed, "repeat_real": repeat_real,
        "stitched_pairs": len(pairs), "words_per_line": [lo, hi], "synthetic": len(syn), "train_items": len(train_all),
        **({"hands": True, "real_words": len(train_p), **({"iam_lines": len(other)} if iam else {})} if hands else {}),
    }  # fmt: skip
    return RecognizerData(train_ds, valid_ds, normalizer, valid_w, {s.text for s in train_w} | set(syn_texts), info)


def build_recognizer_training(args=None, **overrides):
    """The recognizer's training set-up for the one trainer: ``(model, train_loader, valid_loader, config)``.

    ``args`` is an ``argparse.Namespace`` (or any object; missing attributes take the defaults) and
    ``overrides`` win over it.  Recognised names: those of :data:`RECOGNIZER_DEFAULTS`, ``data`` (bigbank
    path), ``limit``, ``out_dir``, ``device`` ("auto"), ``amp`` ("none"), ``num_workers`` (0), ``progress``.
    The model carries its normaliser; the held-out raw words are ``valid_loader.valid_words``.
    """

    def get(name, default=None):
        if name in overrides and overrides[name] is not None:
            return overrides[name]
        v = getattr(args, name, None) if args is not None else None
        return RECOGNIZER_DEFAULTS.get(name, default) if v is None else v

    steps = int(get("steps"))
    seed = int(get("seed"))
    config = RecognizerConfig(hidden=int(get("hidden")), layers=int(get("layers")))
    torch.manual_seed(seed)
    model = Recognizer(config)
    data = recognizer_data(
        config, bigbank=get("data", None), valid_fraction=float(get("valid_fraction")),
        split_seed=int(get("split_seed")), repeat_real=int(get("repeat_real")),
        synthetic=int(get("synthetic")), lines=float(get("line_share")), seed=seed, limit=get("limit", None),
        words_per_line=_words_per_line(get("words_per_line"), "bigbank"),  # never None: RECOGNIZER_DEFAULTS has it
        hands=bool(get("hands", False)), synthbank=get("synthbank", None), iam=get("iam", None),
    )  # fmt: skip
    model.normalizer = data.normalizer
    bs = int(get("batch_size"))
    workers = int(get("num_workers", 0))
    train_loader = make_loader(data.train, bs, num_workers=workers, seed=seed)
    valid_loader = make_loader(data.valid, 64, shuffle=False)
    valid_loader.valid_words = data.valid_words  # type: ignore[attr-defined]
    valid_loader.data_info = data.info  # type: ignore[attr-defined]
    train_config = TrainConfig(
        steps=steps, batch_size=bs, lr=float(get("lr")), optimizer="adam", schedule="step",
        step_size=max(steps // 3, 1), gamma=0.35, warmup_steps=min(200, steps // 10), clip="norm", clip_norm=5.0,
        amp=str(get("amp", "none")), device=str(get("device", "auto")), eval_every=int(get("eval_every")),
        out_dir=get("out_dir", None), seed=seed, num_workers=workers, progress=bool(get("progress", True)),
        log_every=50,
    )  # fmt: skip
    return model, train_loader, valid_loader, train_config


def recognizer_report_fn(valid_loader, batches: int = 2) -> SampleFn:
    """Every ``sample_every`` steps: the recognizer's greedy CER on the first held-out batches, printed."""
    import sys

    from ..evaluate import cer, word_accuracy
    from ..models.recognizer import evaluate_loader

    def report(model, step):
        preds, refs = evaluate_loader(model, valid_loader, max_batches=batches)
        print(f"step {step}: held-out greedy CER {cer(preds, refs):.2%}, word accuracy {word_accuracy(preds, refs):.1%}",
              file=sys.stderr, flush=True)
        return {}

    return report


def recognizer_heldout_metrics(model, valid_loader, beam_width: int = 8) -> dict:
    """CER and word accuracy (with bootstrap intervals and the top confusions) of a trained recognizer on all
    held-out bigbank words, with greedy and beam decoding: what `handwriting train recognizer` saves."""
    import time

    from ..evaluate import score
    from ..models.recognizer import evaluate_loader

    t0, metrics = time.perf_counter(), {}
    for name, bw in (("greedy", 1), (f"beam{beam_width}", beam_width)):
        preds, refs = evaluate_loader(model, valid_loader, beam_width=bw)
        s = score(preds, refs, seed=0)
        metrics[name] = {k: s[k] for k in ("n", "chars", "cer", "cer_ci95", "word_accuracy", "word_accuracy_ci95", "confusions")}
    metrics["eval_s"] = time.perf_counter() - t0
    metrics["torch_threads"] = torch.get_num_threads()
    return metrics


def build_training(opts: dict) -> tuple:
    """``(model, train_loader, valid_loader, train_config, meta, sample_fn)`` for the command line's
    options (a dict over :data:`DEFAULTS`)."""
    kind = opts["model"]
    if opts.get("end_marker") is not None and kind != "transformer":
        raise TrainError(f"--end-marker is for the cursive transformer (handwriting train transformer), not {kind}")
    for key, what in (("real_share", "the share of lines in restyled real ink"),
                      ("ink_lifts", "the largest share of stroke bottoms where restyled real ink lifts the pen")):
        if opts.get(key) is not None and not (kind.startswith("graves") and is_many_hands(opts["data"])):
            raise TrainError(f"--{key.replace('_', '-')} is for Graves networks on --data hands ({what}), "
                             f"not {kind} on --data {opts['data']}")
    if kind == "recognizer" and opts.get("init"):
        raise TrainError("--init is for the generators (graves, graves-prediction, transformer, mdn-transformer)")
    if kind == "recognizer":
        names = ("steps", "batch_size", "lr", "seed", "valid_fraction", "split_seed", "repeat_real", "synthetic",
                 "line_share", "words_per_line", "limit", "hidden", "layers", "device", "amp", "eval_every",
                 "num_workers", "progress")  # fmt: skip
        rec_opts = {k: opts[k] for k in names if opts.get(k) is not None}
        parts = str(opts["data"]).split("+")
        iam = [p.partition(":")[2] for p in parts if p.partition(":")[0] == "iam"]
        if (iam and not is_many_hands(opts["data"])) or any(p.partition(":")[0] not in ("synthetic", "bigbank", "hands", "iam") for p in parts):
            raise TrainError(f"--data {opts['data']!r}: the recognizer trains on bigbank (default), hands or "
                             "hands+iam:PATH")
        rec_opts.update(data=opts.get("bigbank"), out_dir=str(opts["out"]), hands=is_many_hands(opts["data"]),
                        iam=iam[0] if iam else None)
        model, train_loader, valid_loader, config = build_recognizer_training(None, **rec_opts)
        config.checkpoint_every = opts.get("checkpoint_every")
        config.keep_checkpoints = bool(opts.get("keep_checkpoints"))
        config.wandb = bool(opts.get("wandb"))
        path = Path(opts["bigbank"]) if opts.get("bigbank") else None
        if path is None:
            from ..datasets.download import bigbank_path

            path = bigbank_path()
        hands = is_many_hands(opts["data"])
        info = {"data": ("hands: bigbank + synthbank restyled + synthetic writers of every font"
                         + (" + IAM-OnDB lines" if iam else "")) if hands else "bigbank + synthetic", "data_file": portable_path(path), "data_sha256": sha256_file(path),
                "recipe": "handwriting.train.recipes.build_recognizer_training"}
        if hands:
            from ..datasets.download import dataset_path

            sb = dataset_path("synthbank")
            info.update(synthbank_file=portable_path(sb), synthbank_sha256=sha256_file(sb))
        info.update(getattr(valid_loader, "data_info", {}))
        config.sample_every = config.eval_every  # the "sample" of a reader: its greedy CER on held-out words
        meta = {"training": info, "alphabet": getattr(model, "alphabet", None)}
        return model, train_loader, valid_loader, config, meta, recognizer_report_fn(valid_loader)
    init = None
    if opts.get("init"):
        own = Path(str(opts["resume"])) / "last" if opts.get("resume") else None
        if own is not None and ckpt.model_paths(own)[0].is_file():
            # a resumed fine-tune is rebuilt from its own last checkpoint (the architecture, alphabet and
            # normalisation it began with; the state then restores the weights): --init may name other weights now
            model, record = load_init(str(own))
            init = (model, record["init_from"])
        else:
            init = load_init(str(opts["init"]))
        opts = {**opts, "_init": init}
    train_s, valid_s, info = load_data(opts)
    if init is not None:
        info["init_from"] = init[1]
    if kind in ("graves", "graves-prediction"):
        model, tl, vl, meta, sample_fn = _graves_setup(opts, kind, train_s, valid_s, info)
    elif kind == "transformer":
        model, tl, vl, meta, sample_fn = _transformer_setup(opts, kind, train_s, valid_s, info)
    else:
        model, tl, vl, meta, sample_fn = mdn_transformer_setup(opts, kind, train_s, valid_s, info)
    config = _train_config(opts, kind, native_clip=callable(getattr(model, "set_gradient_clipping", None)))
    meta["training"] = info
    if init is not None:
        state = init[0].state_dict()
        if hasattr(model, "with_end_marker_rows"):  # --end-marker on a model saved without one
            state = model.with_end_marker_rows(state)
        model.load_state_dict(state)  # (--resume then loads the run's own weights over them)
    return model, tl, vl, config, meta, sample_fn


def load_init(source: str) -> tuple[torch.nn.Module, dict]:
    """The model named by ``--init`` (a saved model path such as ``runs/x/best``, or a pretrained name) and a
    record of where it came from (for the new run's metadata)."""
    from ..generate import (
        resolve_model,  # the path-or-pretrained-name rule that write() and the CLI use
    )
    from ..pretrained import PretrainedError

    try:
        model = resolve_model(source)
    except (ckpt.CheckpointError, PretrainedError) as exc:
        raise TrainError(f"--init {source}: {exc}") from exc
    meta, weights = model.meta, ckpt.model_paths(source)[0]
    tr, w = meta.get("training") or {}, meta.get("weights") or {}
    record = {"source": portable_arg(source), "path": portable_path(weights) if weights.is_file() else w.get("file"),
              "sha256": w.get("sha256"),
              "steps": tr.get("steps"), "wall_time_s": tr.get("wall_time_s"), "command": tr.get("command"),
              "init_from": tr.get("init_from")}  # fmt: skip
    return model, record


def _init_alphabet(opts: dict, samples, multi: bool):
    """With ``--init``: the starting model's alphabet, after checking that the data's texts fit in it."""
    init = opts.get("_init")
    if init is None:
        return None
    alphabet = init[0].alphabet
    used = {c for s in samples for c in s.text} | ({" "} if multi else set())
    missing = "".join(sorted(used - set(alphabet.chars)))
    if missing:
        raise TrainError(f"--init {opts['init']}: the data uses characters the model has no embedding for: {missing!r} "
                         f"(its alphabet: {alphabet.chars!r}); drop the samples that use them or train from scratch")
    return alphabet


def _alphabet_for(opts: dict, train_s, valid_s, lines: bool):
    """The model's alphabet: the ``--init`` model's (checked against the data), else every character of the
    data, and a space when words are stitched into lines."""
    return _init_alphabet(opts, train_s + valid_s, lines) or Alphabet.from_texts(
        [s.text for s in train_s] + [s.text for s in valid_s], extra=" " if lines else ""
    )


def _with_dropout(opts: dict, config):
    """``--dropout`` (and the cursive transformer's ``--text-dropout``) on a transformer's configuration: training
    settings, not architecture, so they also apply to a model from ``--init``."""
    if opts.get("dropout") is not None:
        config = dataclasses.replace(config, dropout=float(opts["dropout"]))
    if opts.get("text_dropout") is not None:
        config = dataclasses.replace(config, text_dropout=float(opts["text_dropout"]))
    return config


def _init_config(opts: dict, config, model_cls: type, given: dict[str, str]):
    """With ``--init``: the starting model's configuration (architecture and fitted constants such as
    Graves' κ scale), after checking the model kind and any size option given on the command line
    (``given`` maps option → config field)."""
    init = opts.get("_init")
    if init is None:
        return config
    model, rec = init
    if type(model) is not model_cls:
        raise TrainError(f"--init {rec['source']}: holds a {type(model).__name__}, but this run trains a {model_cls.__name__}")
    for opt, field in given.items():
        if opts.get(opt) is not None and int(opts[opt]) != getattr(model.config, field):
            raise TrainError(f"--init {rec['source']}: the model has {field}={getattr(model.config, field)}, but "
                             f"--{opt.replace('_', '-')} {opts[opt]} was given; leave the size options out when fine-tuning")
    return dataclasses.replace(model.config)
