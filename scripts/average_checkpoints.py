"""Average the weights of several checkpoints of one run (Polyak averaging after the fact; "model soup" of a run),
or of several networks fine-tuned from one start (a model soup across runs, Wortsman et al. 2022).

    python scripts/average_checkpoints.py RUN_DIR --steps 2000 2250 2500 -o runs/x/avg2000-2500
    python scripts/average_checkpoints.py --models cursive-transformer-bigbank runs/x/avg2000-2500 -o runs/soup

The checkpoints must share the architecture (one run, or a run and its --resume; or runs that began from one
network with --init: weights far apart in training average to nonsense).  Floating-point tensors are
averaged element-wise; the rest (counters, masks) are taken from the last checkpoint, as are the alphabet,
normaliser, tokenizer and training record.  The output's ``training.averaged_from`` lists the steps and weights
SHA-256 it averages, and its ``metrics`` are dropped: nobody measured the average yet.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from handwriting import checkpoint as ckpt
from handwriting.pretrained import PretrainedError, find_pretrained


def average(paths: list[Path]) -> tuple[torch.nn.Module, dict]:
    """The element-wise mean of the checkpoints' floating-point weights, in a copy of the last one."""
    models = [ckpt.load_model(p) for p in paths]
    last, meta = models[-1]
    states = [m.state_dict() for m, _ in models]
    if any(s.keys() != states[-1].keys() or any(s[k].shape != states[-1][k].shape for k in s) for s in states):
        raise SystemExit("average_checkpoints: the checkpoints have different architectures; average one run's")
    out = copy.deepcopy(last)
    mean = {k: (torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v) for k, v in states[-1].items()}
    out.load_state_dict(mean)
    return out, meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    ap.add_argument("run", type=Path, nargs="?", help="the run directory whose stepN checkpoints --steps names")
    ap.add_argument("--steps", type=int, nargs="+")
    ap.add_argument("--models", nargs="+", metavar="MODEL", help="instead of RUN --steps: checkpoint paths or "
                    "pretrained names, averaged with equal weights")
    ap.add_argument("--output", "-o", type=Path, required=True)
    args = ap.parse_args(argv)
    if (args.models is None) == (args.run is None or args.steps is None):
        ap.error("give RUN_DIR --steps N... or --models MODEL...")
    if args.models is None:
        paths = [args.run / f"step{s}" for s in args.steps]
        sources = [{"step": s} for s in args.steps]
    else:
        # a checkpoint path (stem or file, as checkpoint.model_paths reads it), else a pretrained name
        try:
            paths = [w if (w := ckpt.model_paths(m)[0]).is_file() else find_pretrained(m) for m in args.models]
        except PretrainedError as exc:
            ap.error(f"--models: {exc}")
        sources = [{"model": m} for m in args.models]
    model, meta = average(paths)
    training = dict(meta.get("training") or {})
    training["averaged_from"] = [{**src, "sha256": ckpt.read_meta(p)["weights"]["sha256"]} for src, p in zip(sources, paths)]
    extra = {k: v for k, v in meta.items() if k == "description"}  # alphabet, normaliser, tokenizer: the model's own
    extra["training"] = training
    print(ckpt.save_model(args.output, model, extra))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
