"""`handwriting train`: the command line (options, checks before any work, the run directory)."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from .. import checkpoint as ckpt
from .._io import portable_arg
from .config import TrainError
from .loop import Trainer
from .recipes import MODEL_KINDS, build_training, kind_defaults, recognizer_heldout_metrics

EPILOG = """examples:
  handwriting train graves --data synthetic --steps 3 --size tiny           (a smoke test: seconds)
  handwriting train graves --data bigbank --size small --steps 20000 --out runs/graves
  handwriting train graves --data iam:~/data/iam-ondb --size paper --optimizer rmsprop --clip graves
  handwriting train graves-prediction --data bigbank --steps 5000
  handwriting train transformer --data bigbank --size small --steps 50000 --amp bf16
  handwriting train recognizer --out data/pretrained/recognizer-bigbank  (the shipped reader's recipe: ~30 min)
  handwriting train --resume runs/graves --steps 40000                     (continue, exactly)
  handwriting train transformer --data bigbank --init runs/ct/best --lr 5e-3 --steps 5000  (fine-tune: new optimizer)
  torchrun --nproc_per_node 2 -m handwriting train graves --data bigbank   (data parallel)

Defaults: `handwriting train graves --data bigbank` is the < 60-minute recipe (2000 steps, Adam 2e-3 halved
every 1000 steps, lines of 1-3 words); `graves-prediction --data bigbank` the shipped prediction network's; the
recognizer's its own (train.recipes.RECOGNIZER_DEFAULTS).  Every option given overrides them; with --steps alone
the learning-rate steps scale with it.

--data: synthetic (the built-in synthetic writer, offline), bigbank (the cursive transformer's words;
`handwriting data download bigbank`), iam:PATH (IAM-OnDB unpacked at PATH, official splits), json:PATH (a
handwriting-samples JSON file, e.g. your own), hands (bigbank + synthbank in many hands: every training line
restyled or written by a synthetic writer of any font, never in a held-out hand; datasets/writers.py; hands+iam:PATH
adds IAM-OnDB's lines in their writers' own hands, scaled and resampled to bigbank's ink). Word data is split word-disjointly into training and
validation words (--valid-fraction) and, for the line models, stitched into lines of --words-per-line words.

Written to --out (default runs/MODEL-DATA-TIME): best.* (lowest validation NLL), final.* (the end), last.*
and state.safetensors (every --checkpoint-every steps; what --resume continues from), tb/ (TensorBoard:
`tensorboard --logdir runs`). Validation NLL is reported in nats per sequence (Graves' figure) and per
point, in the model's normalised units.
"""


DEFAULTS: dict[str, Any] = dict(
    model=None, data="synthetic", bigbank=None, steps=2000, epochs=None, batch_size=32, size="small",
    hidden=None, layers=None, mixtures=None, window_mixtures=None, d_model=None, n_layer=None, n_head=None, dropout=None,
    text_dropout=None,
    block_size=None, lr=None, optimizer=None, schedule=None, step_size=None, gamma=None, warmup=None,
    weight_decay=None, clip=None, clip_norm=None, loss_unit=None, amp="none", device="auto", out=None,
    resume=None, init=None, valid_fraction=0.1, words_per_line=None, lines=20000, valid_lines=256, synthetic=2000,
    augment=False, downsample=None, end_marker=None, seed=0, eval_every=500, sample_every=1000, checkpoint_every=500, keep_checkpoints=False, log_every=10,
    num_workers=0, wandb=False, save_dtype=None, limit=None, progress=True, overwrite=False, split_seed=None,
    repeat_real=None, real_share=None, line_share=None, ink_lifts=None,
)  # fmt: skip


def configure(parser) -> None:
    a = parser.add_argument
    a("model", nargs="?", choices=MODEL_KINDS, help="what to train (not needed with --resume)")
    g = parser.add_argument_group("data")
    g.add_argument("--data", help="synthetic | bigbank | synthbank | hands | iam:PATH | json:PATH, or several joined with + "
                   "(bigbank+synthbank: random strings and English words) (default synthetic)")
    g.add_argument("--bigbank", metavar="PATH", help="the bigbank_3500.json.zip to use (default: found as `handwriting data path bigbank`)")
    g.add_argument("--valid-fraction", type=float, help="share of the words held out for validation (default 0.1)")
    g.add_argument("--words-per-line", metavar="N|LO-HI", help="stitch word data into lines of N (or LO-HI) words (default on bigbank-like data: 1-3 for graves, "
                   "1 for graves-prediction, 2-4 for the transformers; else 1)")
    g.add_argument("--lines", type=int, help="stitched training lines per epoch (default 20000)")
    g.add_argument("--valid-lines", type=int, help="stitched validation lines (default 256)")
    g.add_argument("--synthetic", type=int, metavar="N", help="words drawn by the synthetic writer for --data synthetic (default 2000) or added to the recognizer's bigbank words (default 6000)")
    g.add_argument("--limit", type=int, help="use only the first N samples of the data (quick experiments)")
    g.add_argument("--split-seed", type=int, help="recognizer: seed of the held-out word split (default 0, the generators' split)")
    g.add_argument("--real-share", type=float, metavar="F", help="--data hands, Graves networks: the share of training lines in "
                   "restyled real ink, the rest written by synthetic writers of every font (default 0.6; validation lines keep 0.6)")
    g.add_argument("--ink-lifts", type=float, metavar="F", help="--data hands, Graves networks: half the restyled real-ink "
                   "training lines lift the pen at a random share in [0, F] of their stroke bottoms, so real hands differ "
                   "in their rate of pen lifts (default 0: none; validation lines have none)")
    g.add_argument("--repeat-real", type=int, metavar="K", help="recognizer: augmented copies of each real training word (default 2)")
    g.add_argument("--line-share", type=float, metavar="F", help="recognizer: multi-word lines (of --words-per-line words, "
                   "default 2) stitched per training word, real and synthetic alike (default 0.1)")
    g.add_argument("--augment", action="store_true", default=None, help="random shear/scale/rotation of the training data (generators: shear centred on zero, so the writer keeps its slant; the transformer on bigbank-like data re-records each augmented word on bigbank's lattice)")
    g.add_argument("--downsample", type=float, metavar="F", help="Graves networks: drop this fraction of each stroke's interior points (default 0.65 for bigbank, as the cursive transformer does; else 0)")
    m = parser.add_argument_group("model")
    m.add_argument("--size", choices=("tiny", "small", "paper"), help="preset model size (default small)")
    for name in ("hidden", "layers", "mixtures", "window-mixtures"):
        m.add_argument(f"--{name}", type=int, help="Graves networks: override the size preset")
    for name in ("d-model", "n-layer", "n-head", "block-size"):
        m.add_argument(f"--{name}", type=int, help="transformers: override the size preset")
    m.add_argument("--dropout", type=float, metavar="P", help="transformers: dropout on the residual branches, "
                   "the embeddings and the cross-attention while training (default 0; with --init, the starting model's)")
    m.add_argument("--text-dropout", type=float, metavar="P", help="cursive transformer: the share of training lines "
                   "written with the text hidden, so that sampling can use classifier-free guidance (default 0; with "
                   "--init, the starting model's)")
    m.add_argument("--end-marker", action=argparse.BooleanOptionalAction, default=None,
                   help="cursive transformer: a learned end-of-text character after every text (default: on for a "
                   "new model; with --init, --end-marker adds one to a model that has none)")
    t = parser.add_argument_group("training")
    t.add_argument("--steps", type=int, help="optimizer steps (default 2000; on bigbank-like data 2000 for graves and 1000 for "
               "graves-prediction; 4000 for the recognizer)")
    t.add_argument("--epochs", type=int, help="stop after this many epochs")
    t.add_argument("--batch-size", type=int, help="sequences per batch (default 32)")
    t.add_argument("--lr", type=float, help="learning rate (default: 1e-4 with rmsprop (Graves), 1e-2 for the transformer (Greydanus & Wimpee), else 1e-3)")
    t.add_argument("--optimizer", choices=("adam", "adamw", "rmsprop"), help="rmsprop = Graves' RMSProp with momentum")
    t.add_argument("--schedule", choices=("none", "step"), help="step: lr × --gamma every --step-size steps")
    t.add_argument("--step-size", type=int, help="steps between learning-rate decays (default steps/6)")
    t.add_argument("--gamma", type=float, help="learning-rate factor per decay (default 0.5)")
    t.add_argument("--warmup", type=int, help="linear warm-up steps (default 0; 200 with --init)")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--clip", choices=("none", "norm", "graves"), help="gradient clipping (default: graves for the Graves networks with --optimizer rmsprop, else norm)")
    t.add_argument("--clip-norm", type=float)
    t.add_argument("--loss-unit", choices=("point", "sequence"), help="average the loss per point or per sequence (Graves)")
    t.add_argument("--amp", choices=("none", "bf16"), help="bf16 autocast (CPU with AVX-512-BF16/AMX, or CUDA)")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    t.add_argument("--seed", type=int, help="seed of everything (default 0)")
    t.add_argument("--num-workers", type=int, help="data loading processes (default 0)")
    o = parser.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", help="where checkpoints and logs go (default runs/MODEL-DATA-TIME)")
    o.add_argument("--resume", metavar="DIR", help="continue the run in DIR exactly where it stopped")
    o.add_argument("--overwrite", action="store_true", default=None,
                   help="replace the run already in --out (without it, an existing run is never overwritten)")
    o.add_argument("--init", metavar="MODEL", help="start from these weights (a saved model path such as runs/x/best, "
                   "or a pretrained name) with a fresh optimizer and schedule: fine-tuning; the architecture must match")
    o.add_argument("--eval-every", type=int, help="steps between validations (default 500)")
    o.add_argument("--sample-every", type=int, help="steps between sample images in TensorBoard (default 1000)")
    o.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 500)")
    o.add_argument("--keep-checkpoints", action="store_true", default=None,
                   help="also keep the model of every checkpoint as stepN (for scripts/learning_curve.py)")
    o.add_argument("--log-every", type=int)
    o.add_argument("--save-dtype", choices=("fp32", "bf16", "fp16"), help="store the final/best weights at this precision")
    o.add_argument("--wandb", action="store_true", default=None, help="also log to Weights & Biases (pip install wandb)")
    o.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")


def _options(args) -> dict:
    given = {k: v for k, v in vars(args).items() if v is not None}
    opts = dict(DEFAULTS)
    if given.get("resume"):
        from .. import checkpoint as ck

        _, meta = ck.load_training_state(given["resume"])
        saved = (meta.get("resume") or {}).get("options") or ((meta.get("meta") or {}).get("training") or {}).get("options")
        if not saved:
            raise TrainError(f"{given['resume']}: the state holds no command-line options; resume it from Python with Trainer.load_state")
        opts.update(saved)
        if saved.get("model") == "transformer" and "end_marker" not in saved:
            opts["end_marker"] = False  # a run started before the end-of-text marker existed has none
        for key in ("model", "data", "size", "bigbank"):  # what the run is cannot change on resume
            if key in given and given[key] != saved.get(key):
                raise TrainError(f"--resume: the run in {given['resume']} trained {key}={saved.get(key)!r}; cannot switch to {given[key]!r}")
        opts["out"] = given["resume"]
    opts.update(given)
    if not given.get("resume"):  # a kind's own defaults (its recipe); a resumed run keeps its options
        own = kind_defaults(opts.get("model"), str(opts["data"]))
        opts.update({k: v for k, v in own.items() if k not in given})
        if "step_size" in own and "steps" in given and "step_size" not in given:  # the schedule scales with --steps
            opts["step_size"] = max(1, round(own["step_size"] * int(given["steps"]) / own["steps"]))
    if not opts.get("model"):
        raise TrainError("say what to train: handwriting train graves|graves-prediction|transformer|mdn-transformer|recognizer ...")
    return opts


def _command_line(opts: dict) -> str:
    parts = ["handwriting", "train", str(opts["model"])]
    for k, v in opts.items():
        if k == "end_marker" and v is False:
            parts.append("--no-end-marker")
            continue
        default = kind_defaults(opts["model"], str(opts.get("data"))).get(k, DEFAULTS.get(k))
        if k in ("model", "resume", "overwrite") or v is None or v == default or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if k == "progress":
            parts.append("--no-progress")
        elif v is True:
            parts.append(flag)
        else:
            parts += [flag, portable_arg(str(v))]
    return shlex.join(parts)




#: what a run writes into --out (an existing one is only replaced with --overwrite)
RUN_FILES = ("state.safetensors", "best.safetensors", "best.json", "final.safetensors", "final.json",
             "last.safetensors", "last.json")


def _check_options(opts: dict) -> None:
    """Refuse option values that would fail later with a traceback, or silently mean something else."""
    def need(name: str, ok: bool, what: str) -> None:
        if opts.get(name) is not None and not ok:
            raise TrainError(f"--{name.replace('_', '-')} {opts[name]!r}: {what}")

    for name in ("steps", "epochs", "batch_size", "lines", "repeat_real", "valid_lines", "synthetic", "limit", "eval_every",
                 "sample_every", "checkpoint_every", "log_every", "step_size"):
        need(name, isinstance(opts.get(name), int) and opts[name] >= 1, "give a whole number >= 1")
    need("num_workers", isinstance(opts.get("num_workers"), int) and opts["num_workers"] >= 0,
         "give 0 (load data in the training process) or more worker processes")
    need("warmup", isinstance(opts.get("warmup"), int) and opts["warmup"] >= 0, "give a whole number of steps >= 0")
    need("seed", isinstance(opts.get("seed"), int) and 0 <= opts["seed"] < 2**63, "give a whole number in [0, 2**63)")
    finite = lambda v: isinstance(v, (int, float)) and math.isfinite(v)  # noqa: E731
    need("valid_fraction", finite(opts.get("valid_fraction")) and 0 < opts["valid_fraction"] < 1, "give a share in (0, 1)")
    need("real_share", finite(opts.get("real_share")) and 0 <= opts["real_share"] <= 1, "give a share in [0, 1]")
    need("ink_lifts", finite(opts.get("ink_lifts")) and 0 <= opts["ink_lifts"] <= 1, "give a share in [0, 1]")
    need("line_share", finite(opts.get("line_share")) and 0 <= opts["line_share"] <= 1, "give a share in [0, 1]")
    need("line_share", opts.get("model") == "recognizer", "only the recognizer's data has a share of lines; leave it out")
    need("dropout", finite(opts.get("dropout")) and 0 <= opts["dropout"] < 1, "give a probability in [0, 1)")
    need("dropout", opts.get("model") in ("transformer", "mdn-transformer"), "only the transformers have dropout; leave it out")
    need("text_dropout", finite(opts.get("text_dropout")) and 0 <= opts["text_dropout"] < 1, "give a probability in [0, 1)")
    need("text_dropout", opts.get("model") == "transformer", "only the cursive transformer hides its text; leave it out")
    need("downsample", finite(opts.get("downsample")) and 0 <= opts["downsample"] < 1,
         "give the share of each stroke's interior points to drop, in [0, 1)")
    for name in ("lr", "clip_norm"):
        need(name, finite(opts.get(name)) and opts[name] > 0, "give a finite number > 0")
    need("gamma", finite(opts.get("gamma")) and 0 < opts["gamma"] <= 1, "the learning-rate factor per decay: 0 < gamma <= 1")
    need("weight_decay", finite(opts.get("weight_decay")) and opts["weight_decay"] >= 0, "give a finite number >= 0")
    if opts.get("resume") and opts.get("overwrite"):
        raise TrainError("--resume continues a run and --overwrite replaces one: give one of them")


def _prepare_out(out: Path, opts: dict) -> list[Path]:
    """Before any work: never replace an existing run unasked, and fail at once if --out cannot be written.
    Returns the old run's files that --overwrite replaces (removed once the new run is set up)."""
    found = [] if opts.get("resume") else [f for f in RUN_FILES if (out / f).exists()]
    if found and not opts.get("overwrite"):
        raise TrainError(
            f"--out {out} already holds a run ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}); "
            f"continue it with `--resume {out}`, replace it with --overwrite, or choose another --out"
        )
    folder = out
    while not folder.exists() and folder != folder.parent:  # the run's folder is made later, by the trainer
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file, not a folder")
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise TrainError(f"--out {out}: cannot write there ({exc.strerror or exc}); choose a folder you can write to "
                         "or fix its permissions") from exc
    return [out / f for f in found]


def run(args) -> int:
    import datetime as _dt

    opts = _options(args)
    _check_options(opts)
    if not opts.get("out"):
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        opts["out"] = str(Path("runs") / f"{opts['model']}-{str(opts['data']).partition(':')[0]}-{stamp}")
    out = Path(opts["out"])
    replaced = _prepare_out(out, opts)
    model, train_loader, valid_loader, config, meta, sample_fn = build_training(opts)
    for f in replaced:
        f.unlink(missing_ok=True)
    training = meta.setdefault("training", {})
    training.update(
        command=_command_line(opts),
        argv=[portable_arg(a) for a in sys.argv],
        options={k: portable_arg(v) if isinstance(v, str) else v for k, v in opts.items() if k not in ("resume", "overwrite")},
        git_commit=ckpt.git_commit(),
    )
    trainer = Trainer(model, train_loader, valid_loader, config, sample_fn=sample_fn, meta=meta)
    trainer.resume_meta["options"] = {k: v for k, v in opts.items() if k not in ("resume", "overwrite", "_init")}
    if opts.get("resume"):
        state = trainer.load_state(opts["resume"])
        began_from = ((state.get("meta") or {}).get("training") or {}).get("init_from")
        if began_from is not None:  # what --init held when the run began, not what that name or path holds now
            training["init_from"] = began_from
        if trainer.step >= trainer.total_steps():
            print(f"{opts['resume']}: already trained {trainer.step} steps; raise --steps to train further")
            return 0
    if trainer.is_main:
        n = sum(p.numel() for p in model.parameters())
        counts = ""
        if "train_samples" in training:
            counts = f" ({training['train_samples']} training / {training['valid_samples']} validation samples)"
        print(f"training {type(model).__name__} ({n / 1e6:.2f}M parameters) on {training.get('data', opts['data'])}"
              f"{counts}, device {trainer.device}, {config.steps or '-'} steps; writing to {out}")  # fmt: skip
    heldout = None
    try:
        summary = trainer.fit()
        if trainer.is_main:
            metrics = None
            if opts["model"] == "recognizer":  # a reader is judged by what it reads: all held-out words, greedy and beam
                heldout = recognizer_heldout_metrics(trainer.model, valid_loader)
                metrics = {"heldout_bigbank": heldout, **(summary.get("valid") or {})}
            trainer.save_model(out / "final", metrics=metrics, dtype=opts.get("save_dtype"))
            if opts.get("save_dtype") and (out / "best.safetensors").is_file():
                best, _ = ckpt.load_model(out / "best", verify=True)
                meta_best = ckpt.read_meta(out / "best")
                extra = {k: meta_best.get(k) for k in ("alphabet", "normalizer", "tokenizer", "training", "metrics")}
                ckpt.save_model(out / "best", best, extra, dtype=opts["save_dtype"])
    finally:
        trainer.close()
    if trainer.is_main:
        v = summary.get("valid") or {}
        msg = f"done: {summary['steps']} steps in {summary['wall_time_s']:.1f} s"
        if v:
            msg += f"; validation NLL {v['nll_per_sequence']:.2f} nats/sequence ({v['nll_per_point']:.4f} nats/point)"
        if summary["skipped_steps"]:
            msg += f"; {summary['skipped_steps']} non-finite steps skipped"
        print(msg)
        if heldout is not None:
            from ..evaluate import format_table

            print("held-out bigbank words:")
            print(format_table([(k, v) for k, v in heldout.items() if isinstance(v, dict)]))
        hint = f"; try: handwriting write \"hello\" --model {out / 'best'}" if opts["model"] in ("graves", "transformer", "mdn-transformer") else ""
        print(f"model: {out / 'final'}.safetensors (best: {out / 'best'}.safetensors){hint}")
    return 0
