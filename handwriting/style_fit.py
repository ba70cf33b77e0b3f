"""Your hand in five minutes: fine-tune a shipped synthesis network on a few dozen of your words and keep the
result as a small style file (:mod:`handwriting.style_file`); also the ``handwriting style`` command.

:func:`fit_style` trains a small part of Graves' synthesis network — by default the mixture-density head
(which draws every pen movement: its size, its slant, when the pen lifts), the window layer (how fast the
attention moves along the text: how wide each letter is written) and every LSTM bias (a per-unit offset
that shifts the network's dynamics without touching any of its learnt weights), 74k of the 1.01M
parameters — on the learner's samples, prepared exactly like the model's training data: thinned to its
point density (:func:`~handwriting.generate.match_point_density`), normalised with its normaliser, and
stitched into short lines of 1–2 samples (:class:`~handwriting.datasets.torch_data.StitchedLines`), with no
augmentation (a learner's slant and size are the point).  Adam with a short warm-up and dropout 0.2 on the
hidden states, through the package's :class:`~handwriting.train.Trainer` (the other parameters are frozen),
until ``steps`` are done or the ``minutes`` of wall time are used up (the whole call, loading included) — or,
earlier, once the NLL of a fifth of the samples, held out, has stopped improving: the tensors of its best
measurement are the ones kept.  Thirty words are learnt by heart within a few hundred steps (the held-out NLL
then rises again), which on two CPU cores takes two to three minutes.

Why these tensors: the head alone moves the held-out NLL of a new writer most per step but overfits first;
adding the window and the biases reaches a lower held-out NLL (the held-out writer 'backhand', fitted on 30
random words, measured on 30 others: 3.87 → 1.11 nats per point at best, vs 1.30 for the head alone; tuning
every weight reaches 1.04 but makes a 4 MB file, a whole model, and overfits within 100 steps); dropout 0.2
brings it to 0.94 (0.92 with 0.35 or 0.5; 'print': 3.35 → -0.59 without dropout, -0.74 with 0.2)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ArgumentError, DataError, HandwritingError
from .style_file import DEFAULT_TUNE, SUFFIX, TUNE_SETS, StyleError, StyleFile, base_fingerprint, read_style, texts_sha256, tuned_names

__all__ = ["fit_style", "prepare_samples", "split_samples", "DEFAULT_BASE", "DEFAULTS", "EPILOG", "configure", "run"]

#: the network a style is fitted to unless told otherwise: the one trained on many hands, whose style files
#: read back better on held-out real hands than those of the one-hand default writer (README, "style files")
DEFAULT_BASE = "graves-synthesis-hands"

#: the fine-tuning recipe (chosen on the held-out writers 'backhand' and 'print': held-out NLL per point)
DEFAULTS = {"lr": 3e-3, "batch_size": 16, "warmup": 20, "words_per_line": (1, 2), "clip_norm": 10.0,
            "valid_fraction": 0.2, "eval_every": 25, "patience": 150, "dropout": 0.2}

EPILOG = """examples:
  handwriting style fit my_words.json -o mine.style              (5 minutes on this machine's CPU)
  handwriting style fit my_words.json -o mine.style --minutes 2 --threads 2
  handwriting style show mine.style
  handwriting write "in my own hand" --style mine.style -o mine.svg

SAMPLES.json is a handwriting-samples file (notebook 08's canvas saves one): 20-50 words of your writing,
each sample with its text.  The style file holds only the tuned tensors (~290 KB) and the SHA-256 of the
base model it belongs to; `write --style` loads that base and puts them in.
"""


def _check_samples(samples: Sequence, alphabet, where: str = "fit_style") -> list:
    from .strokes import Sample, check_offsets

    if isinstance(samples, Sample):
        samples = [samples]
    samples = list(samples)
    if not samples:
        raise DataError(f"{where}: no samples given; capture 20-50 words of your handwriting (notebook 08) first")
    chars = "".join(getattr(alphabet, "chars", ""))
    for i, s in enumerate(samples):
        if not isinstance(s, Sample):
            raise DataError(f"{where}: sample {i} is a {type(s).__name__}, not a Sample (load files with "
                            "handwriting.datasets.jsonink.load_samples)")
        label = f"sample {i} ({s.text!r})"
        if not s.text or not s.text.strip():
            raise DataError(f"{where}: {label} has no text; every sample needs the text it says to teach the model "
                            "your hand (label it, or leave it out)")
        bad = [(k, c) for k, c in enumerate(s.text) if c not in alphabet]
        if bad:
            k, c = bad[0]
            raise DataError(f"{where}: {label}: character {c!r} at position {k} is not one the model can write (it knows "
                            f"{len(chars)} characters: {chars!r}); fix the text or leave the sample out")
        check_offsets(s.offsets, where=f"{where}: {label}")
    return samples


def prepare_samples(samples: Sequence, model) -> list:
    """The samples as the model's training data looked: checked against its alphabet (a :class:`DataError`
    naming the sample and the character), thinned to its point density, the first offset zeroed."""
    from .generate import _alphabet, match_point_density
    from .strokes import Sample

    out = []
    for s in _check_samples(samples, _alphabet(model)):
        off = match_point_density(s.offsets, s.text, model).copy()
        out.append(Sample(off, text=s.text, writer=s.writer, source=s.source))
    return out


def _check_limits(minutes, steps) -> tuple[float | None, int | None]:
    from .generate import check_number

    if minutes is None and steps is None:
        raise ArgumentError("fit_style: give minutes (--minutes) or steps (--steps), or both; the default is 5 minutes")
    if minutes is not None:
        minutes = check_number("fit_style: minutes (--minutes)", minutes, 0.01, 24 * 60, hint="; the wall-time budget")
    if steps is not None:
        steps = check_number("fit_style: steps (--steps)", steps, 1, integer=True, hint="; optimizer steps")
    return minutes, steps


def split_samples(samples: list, valid_fraction: float, seed: int) -> tuple[list, list]:
    """``(train, valid)``: about ``valid_fraction`` of the samples (at least one) held out at random to stop
    the fit when it starts to learn the samples rather than the hand; no split for fewer than 5 samples."""
    import numpy as np

    if valid_fraction <= 0 or len(samples) < 5:
        return list(samples), []
    n_valid = min(max(1, round(valid_fraction * len(samples))), len(samples) // 2)
    order = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x57F1])).permutation(len(samples))
    held = set(order[:n_valid].tolist())
    return [s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held]


def _valid_batches(samples: list, model, seed: int, batch_size: int = 32) -> list:
    """The held-out samples as fixed batches of lines of 1–2 of them (as the training lines are made)."""
    from .datasets.torch_data import StitchedLines, StrokeDataset, collate
    from .generate import trained_line_chars

    n = min(max(2 * len(samples), 8), 64)
    lines = StitchedLines(samples, DEFAULTS["words_per_line"], num_lines=n, seed=seed + 1,
                          max_chars=trained_line_chars(model) or 26)
    ds = StrokeDataset(lines, model.alphabet, normalizer=model.normalizer, seed=seed)
    return [collate([ds[i] for i in range(j, min(j + batch_size, n))]) for j in range(0, n, batch_size)]


def fit_style(
    samples: Sequence,
    model: Any = DEFAULT_BASE,
    minutes: float | None = 5.0,
    steps: int | None = None,
    seed: int = 0,
    progress: Callable[[dict], None] | None = None,
    tune: str = DEFAULT_TUNE,
    lr: float = DEFAULTS["lr"],
    batch_size: int = DEFAULTS["batch_size"],
    warmup: int = DEFAULTS["warmup"],
    valid_fraction: float = DEFAULTS["valid_fraction"],
    eval_every: int = DEFAULTS["eval_every"],
    patience: int | None = DEFAULTS["patience"],
    dropout: float = DEFAULTS["dropout"],
    device: str = "cpu",
) -> StyleFile:
    """Fine-tune ``model`` (a pretrained name, a checkpoint path or a synthesis network; never changed) on
    ``samples`` (:class:`~handwriting.strokes.Sample` s with their texts) and return the style
    (:class:`~handwriting.style_file.StyleFile`; ``.save(path)`` writes it).

    Trains the tensors of ``tune`` (:data:`~handwriting.style_file.TUNE_SETS`; default the head, the window
    layer and the LSTM biases) with Adam (``lr``, linear warm-up over ``warmup`` steps, gradient norm clipped
    to 10) on lines of 1–2 samples, ``batch_size`` lines a step, until ``steps`` steps are done or
    ``minutes`` of wall time (the whole call) are used up, whichever comes first.

    Early stopping: ``valid_fraction`` of the samples (at least one; none with fewer than 5 samples or
    ``valid_fraction=0``) are held out; every ``eval_every`` steps the NLL of the held-out lines is measured,
    the tensors of the best measurement are the ones kept, and the fit ends once ``patience`` steps have
    passed without a better one (``None``: never) — a few dozen words are learnt by heart within a few hundred
    steps, after which the held-out NLL rises again.

    ``progress``, when given, is called after every step with ``{"step", "steps", "elapsed_s", "budget_s",
    "loss", "nll_per_point", "valid_nll_per_point", "model"}`` (``valid_nll_per_point``: the latest
    held-out measurement or None; ``model``: the copy being tuned, to look at).  Deterministic for a fixed
    ``seed`` and ``steps`` (a time budget stops wherever the clock says)."""
    import copy
    import math

    import torch

    from .datasets.torch_data import StitchedLines, StrokeDataset, make_loader
    from .generate import check_number, check_seed, resolve_model, trained_line_chars
    from .train import Logger, Trainer, TrainConfig, isolated_rng

    t0 = time.perf_counter()
    minutes, steps = _check_limits(minutes, steps)
    seed = check_seed("fit_style: seed (--seed)", seed)
    lr = check_number("fit_style: lr (--lr)", lr, 1e-7, 1.0)
    batch_size = check_number("fit_style: batch_size (--batch-size)", batch_size, 1, 4096, integer=True)
    warmup = check_number("fit_style: warmup (--warmup)", warmup, 0, integer=True)
    valid_fraction = check_number("fit_style: valid_fraction", valid_fraction, 0, 0.5, hint="; the share of samples held out")
    eval_every = check_number("fit_style: eval_every", eval_every, 1, integer=True)
    dropout = check_number("fit_style: dropout", dropout, 0, 0.9)
    if patience is not None:
        patience = check_number("fit_style: patience (--patience)", patience, 1, integer=True)
    if tune not in TUNE_SETS:
        raise ArgumentError(f"fit_style: tune={tune!r}; use one of {', '.join(TUNE_SETS)}")
    base = resolve_model(model, device)
    if not all(hasattr(base, a) for a in ("window", "head", "lstms")) or getattr(base, "normalizer", None) is None:
        name = getattr(base, "pretrained_name", None) or type(base).__name__
        raise StyleError(f"fit_style: {name!r} is not a trained Graves synthesis network with a normaliser; style files "
                         f"fine-tune one (e.g. model={DEFAULT_BASE!r})")
    if getattr(base, "style", None) is not None:
        raise StyleError(f"fit_style: {base.pretrained_name!r} already has a style applied; fit on its base model "
                         f"({base.style.base_name!r}) instead")
    prepared = prepare_samples(samples, base)
    train_s, valid_s = split_samples(prepared, valid_fraction, seed)
    fingerprint = base_fingerprint(base, base_name(model, base))
    work = copy.deepcopy(base)  # the (cached, shared) base is never touched
    work.config.dropout = dropout  # on the hidden states the head and the layers above read; training only
    tuned = set(tuned_names(work, tune))
    for n, p in work.named_parameters():
        p.requires_grad_(n in tuned)
    lines = StitchedLines(train_s, DEFAULTS["words_per_line"], num_lines=max(64 * batch_size, 2000), seed=seed,
                          max_chars=trained_line_chars(base) or 26)
    loader = make_loader(StrokeDataset(lines, work.alphabet, normalizer=work.normalizer, seed=seed), batch_size, seed=seed)
    valid = _valid_batches(valid_s, work, seed) if valid_s else None
    config = TrainConfig(steps=steps or 10**9, lr=lr, optimizer="adam", warmup_steps=warmup, clip="norm",
                         clip_norm=DEFAULTS["clip_norm"], device=device, progress=False, seed=seed, log_every=10**9)
    trainer = Trainer(work, loader, None, config, logger=Logger())
    snapshot = lambda: {n: p.detach().to("cpu").clone() for n, p in work.named_parameters() if n in tuned}  # noqa: E731
    curve: list[list] = []
    best = (math.inf, None, 0)  # (held-out NLL per point, tensors, step)

    def measure() -> float:
        nonlocal best
        v = trainer.evaluate(valid)["nll_per_point"]
        curve.append([trainer.step, round(v, 4)])
        if v < best[0]:
            best = (v, snapshot(), trainer.step)
        return v

    v_last = measure() if valid else None
    budget = None if minutes is None else 60.0 * minutes
    history: list[dict] = []
    t_train = time.perf_counter()
    step_s = 0.0  # a running estimate of one step's time: stop before the step that would overrun the budget
    stopped = "steps"
    batches = _cycle(loader)
    try:
        with isolated_rng():  # dropout draws from torch's RNG: seed it here, leave the caller's untouched
            torch.manual_seed(seed)
            while steps is None or trainer.step < steps:
                if budget is not None and time.perf_counter() - t0 + step_s > budget:
                    stopped = "minutes"
                    break
                if valid and patience is not None and trainer.step - best[2] >= patience:
                    stopped = "patience"
                    break
                t_step = time.perf_counter()
                rec = trainer.train_step(next(batches))
                dt = time.perf_counter() - t_step
                step_s = dt if not history else max(0.9 * step_s, dt)
                history.append(rec)
                if valid and trainer.step % eval_every == 0:
                    v_last = measure()
                if progress is not None:
                    progress({"step": trainer.step, "steps": steps, "elapsed_s": time.perf_counter() - t0,
                              "budget_s": budget, "loss": rec["loss"], "nll_per_point": rec["nll_per_point"],
                              "valid_nll_per_point": v_last, "model": work})
            if valid and curve[-1][0] != trainer.step:
                measure()
    finally:
        trainer.close()
    if not history:
        raise StyleError(f"fit_style: the budget of {minutes} minutes ran out before the first training step (loading "
                         "took it); give more --minutes")
    wall = time.perf_counter() - t0
    first = [h["nll_per_point"] for h in history[:10]]
    last = [h["nll_per_point"] for h in history[-10:]]
    texts = [s.text for s in prepared]
    meta = {
        "base": fingerprint,
        "tune": tune,
        "data": {
            "samples": len(prepared),
            "words": sum(len(t.split()) for t in texts),
            "chars": sum(len(t.replace(" ", "")) for t in texts),
            "points": sum(len(s.offsets) for s in prepared),
            "texts_sha256": texts_sha256(texts),
            "writers": sorted({s.writer for s in prepared if s.writer}),
        },
        "training": {
            "steps": trainer.step,
            "kept_step": best[2] if valid else trainer.step,
            "stopped_by": stopped,
            "skipped_steps": trainer.skipped_steps,
            "wall_time_s": round(wall, 2),
            "train_time_s": round(time.perf_counter() - t_train, 2),
            "minutes": minutes,
            "max_steps": steps,
            "lr": lr,
            "warmup_steps": warmup,
            "batch_size": batch_size,
            "words_per_line": list(DEFAULTS["words_per_line"]),
            "seed": seed,
            "optimizer": "adam",
            "clip_norm": DEFAULTS["clip_norm"],
            "dropout": dropout,
            "nll_per_point_first": round(sum(first) / len(first), 4),
            "nll_per_point_last": round(sum(last) / len(last), 4),
            "torch_threads": torch.get_num_threads(),
        },
        "validation": None if not valid else {
            "samples": len(valid_s),
            "texts": [s.text for s in valid_s],
            "eval_every": eval_every,
            "patience": patience,
            "nll_per_point_base": curve[0][1],
            "nll_per_point_kept": round(best[0], 4),
            "curve": curve,
        },
    }
    return StyleFile(best[1] if valid else snapshot(), meta)


def _cycle(loader):
    """The loader's batches, epoch after epoch (each epoch in a new order)."""
    epoch = 0
    while True:
        loader.batch_sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def base_name(model: Any, base) -> str | None:
    """The name a style records for its base: the pretrained name it was loaded as, else the checkpoint's
    absolute path (a style file is used from other folders than the one it was fitted in; where the base
    has moved, ``model=`` / ``--model`` names it, and its SHA-256 proves it is the same network)."""
    if getattr(base, "pretrained_name", None):
        return base.pretrained_name
    if isinstance(model, (str, os.PathLike)):
        return os.path.abspath(os.fspath(model))
    return None


# ----------------------------------------------------------------------------------------------------------
# `handwriting style`


def configure(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{fit,show}")
    sub.required = True
    fit = sub.add_parser("fit", help="fine-tune a model on your samples and save the style file",
                         description="fine-tune a synthesis network on a handwriting-samples file and save a style file")
    fit.add_argument("samples", help="a handwriting-samples JSON file (notebook 08's canvas saves one)")
    fit.add_argument("--output", "-o", required=True, help=f"the style file to write (e.g. mine{SUFFIX})")
    fit.add_argument("--minutes", type=float, default=5.0, help="wall-time budget in minutes, loading included (default 5; "
                     "0: none, with --steps); the fit usually ends earlier, when the held-out samples stop improving")
    fit.add_argument("--steps", type=int, default=None, help="stop after this many steps at the latest (default: no limit)")
    fit.add_argument("--model", "-m", default=DEFAULT_BASE,
                     help=f"the base model: a pretrained name or checkpoint path (default {DEFAULT_BASE})")
    fit.add_argument("--tune", choices=list(TUNE_SETS), default=DEFAULT_TUNE, help=f"which tensors to tune (default {DEFAULT_TUNE})")
    fit.add_argument("--lr", type=float, default=DEFAULTS["lr"], help=f"Adam's learning rate (default {DEFAULTS['lr']})")
    fit.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help=f"lines per step (default {DEFAULTS['batch_size']})")
    fit.add_argument("--patience", type=int, default=DEFAULTS["patience"],
                     help="stop once the held-out samples' NLL has not improved for this many steps "
                          f"(default {DEFAULTS['patience']}; 0: never)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the line stitching and batch order (default 0)")
    fit.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    show = sub.add_parser("show", help="say what a style file holds", description="say what a style file holds")
    show.add_argument("style", help="a .style file")


def _fmt_time(s: float) -> str:
    return f"{int(s // 60)}:{s % 60:04.1f}"


def run(args) -> int:
    if args.action == "show":
        print(read_style(args.style).summary())
        return 0
    from .datasets.jsonink import load_samples
    from .export import check_output

    out = Path(args.output)
    check_output(out, formats=None)  # before the minutes of fitting, not after them
    if out.exists() and not args.overwrite:
        raise HandwritingError(f"{out}: already exists; pass --overwrite to replace it, or choose another -o")
    if not args.minutes and not args.steps:
        raise ArgumentError("--minutes 0 (no time limit) needs --steps N, the most steps to take")
    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise ArgumentError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    samples = load_samples(args.samples)
    words = sum(len(s.text.split()) for s in samples)
    budget = f"{args.minutes:g} minute{'' if args.minutes == 1 else 's'}" if args.minutes else "no time limit"
    print(f"fitting a style to {len(samples)} samples ({words} words) of {args.samples} on {args.model} "
          f"({budget}{f', at most {args.steps} steps' if args.steps else ''})", flush=True)
    last = [0.0]

    def report(p: dict) -> None:
        if p["elapsed_s"] - last[0] >= 15 or p["step"] == 1 or p["step"] == p["steps"]:
            last[0] = p["elapsed_s"]
            left = f" of {_fmt_time(p['budget_s'])}" if p["budget_s"] else ""
            held = p["valid_nll_per_point"]
            held = f", held-out {held:+.3f}" if held is not None else ""
            print(f"  step {p['step']:>5}  {_fmt_time(p['elapsed_s'])}{left}  NLL {p['nll_per_point']:+.3f}{held} nats/point",
                  flush=True)

    try:
        style = fit_style(samples, model=args.model, minutes=args.minutes or None, steps=args.steps, seed=args.seed,
                          progress=report, tune=args.tune, lr=args.lr, batch_size=args.batch_size,
                          patience=args.patience or None)
    except DataError as exc:  # a bad sample: say which file it is in
        raise DataError(f"{args.samples}: {exc}") from None
    path = style.save(out)
    tr = style.meta["training"]
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB): {tr['steps']} steps in {_fmt_time(tr['wall_time_s'])} "
          f"({tr['wall_time_s']:.1f} s), training NLL {tr['nll_per_point_first']:+.3f} -> {tr['nll_per_point_last']:+.3f} "
          f"nats/point", flush=True)
    v = style.meta.get("validation")
    if v:
        print(f"kept step {tr['kept_step']} (stopped by {tr['stopped_by']}): NLL of the {v['samples']} held-out samples "
              f"{v['nll_per_point_base']:+.3f} -> {v['nll_per_point_kept']:+.3f} nats/point")
    print(f'write with it: handwriting write "your text" --style {path}')
    return 0
