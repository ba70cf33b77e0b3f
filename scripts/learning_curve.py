"""Learning curve of a training run: legibility and validation NLL against training CPU-minutes.

    python scripts/learning_curve.py RUN_DIR [--start MODEL] [--n 100] [--bias 1] [--recognizer NAME]
                                     [--json PATH] [--figure PATH]

Every ``RUN_DIR/stepN`` checkpoint (and ``--start``, the model a fine-tuning run began from, at its own
training time) writes ``--n`` unseen random strings and ``--n`` everyday English phrases at ``--bias``, read by
``--recognizer`` (greedy).  The texts use ``--seed 1``, a *selection* draw: the README's legibility table uses
seed 0, so choosing a checkpoint here does not tune the reported numbers.  Validation NLL (nats per point) is
the one each checkpoint recorded on its own run's validation lines; ``--start`` is measured on those same lines
(:func:`start_nll`: its own record is on its own run's, which may be other data).  The x axis is the training wall time
recorded in the checkpoints (cumulative over ``--init`` pieces): on a shared 2-core machine it is wall time
with other jobs running, an upper bound on what the run alone would take.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from handwriting import evaluate
from handwriting.generate import resolve_model
from handwriting.notebook_utils import checkpoints


def minutes(meta: dict) -> float:
    """Training wall time of a checkpoint, its --init ancestors' included, in minutes."""
    total, tr = 0.0, meta.get("training") or {}
    total += float(tr.get("wall_time_s") or 0)
    init = tr.get("init_from")
    while init:
        total += float(init.get("wall_time_s") or 0)
        init = init.get("init_from")
    return total / 60


def start_nll(run: Path, model) -> float:
    """Validation NLL (nats per point) of ``model`` on ``run``'s own validation lines, built from the options the
    run recorded (so a fine-tuning run's step 0 is on the same footing as its checkpoints)."""
    import tempfile

    import torch

    from handwriting.notebook_utils import checkpoints as ckpts
    from handwriting.train import Trainer
    from handwriting.train.command import DEFAULTS
    from handwriting.train.recipes import build_training

    first = resolve_model(str(ckpts(run)[0][1])).meta["training"]["options"]
    opts = {**DEFAULTS, **{k: v for k, v in first.items() if k in DEFAULTS}, "init": None, "progress": False,
            "out": tempfile.mkdtemp(prefix="learning-curve-")}  # the trainer may log there; never the run's folder
    # built as if fine-tuning ``model``: its architecture, alphabet and tokenizer (a tokenizer fitted afresh to
    # data other than bigbank's would score it in the wrong units)
    opts["_init"] = (model, {"source": "the model measured"})
    net, train, valid, config, _, _ = build_training(opts)
    net.load_state_dict(model.state_dict())
    with torch.no_grad():
        return float(Trainer(net, train, valid, config).evaluate()["nll_per_point"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--start", default=None, help="the model the run started from (--init), drawn at step 0")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--bias", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--recognizer", default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args(argv)

    points = []
    todo = ([(0, args.start)] if args.start else []) + [(s, str(p)) for s, p in checkpoints(args.run)]
    for step, model in todo:
        meta = resolve_model(model).meta
        nll = start_nll(args.run, resolve_model(model)) if step == 0 else (meta.get("metrics") or {}).get("nll_per_point")
        row = {"step": step, "model": model, "minutes": round(minutes(meta), 1), "valid_nll_per_point": nll}
        for kind in ("random", "english"):
            r = evaluate.legibility(model, bias=args.bias, n=args.n, seed=args.seed, texts=kind, recognizer=args.recognizer)
            row[f"cer_{kind}"] = r["cer"]
            row[f"cer_{kind}_ci95"] = r["cer_ci95"]
        print(json.dumps(row), flush=True)
        points.append(row)
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "bias": args.bias, "n": args.n, "seed": args.seed,
                                         "points": points}, indent=1) + "\n")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
        x = [p["minutes"] for p in points]
        for kind, style in (("random", "o-"), ("english", "s-")):
            y = [100 * p[f"cer_{kind}"] for p in points]
            lo = [100 * (p[f"cer_{kind}"] - p[f"cer_{kind}_ci95"][0]) for p in points]
            hi = [100 * (p[f"cer_{kind}_ci95"][1] - p[f"cer_{kind}"]) for p in points]
            a.errorbar(x, y, yerr=[lo, hi], fmt=style, capsize=2, label=f"{kind} texts")
        a.set_xlabel("training wall time, 2 shared CPU cores (min)")
        a.set_ylabel(f"CER at bias {args.bias:g} (%)")
        a.legend()
        b.plot(x, [p["valid_nll_per_point"] for p in points], "o-")
        b.set_xlabel("training wall time (min)")
        b.set_ylabel("validation NLL (nats/point, own run)")
        fig.suptitle(f"{args.run.name}: legibility and NLL while training", fontsize=9)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
