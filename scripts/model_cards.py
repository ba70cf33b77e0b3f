"""Figures for the model cards in data/pretrained/README.md: sample grids of held-out words at several biases
and loss curves from a training run's TensorBoard log.

    python scripts/model_cards.py grid graves-synthesis-bigbank cursive-transformer-bigbank
    python scripts/model_cards.py curves graves-synthesis-bigbank=runs/graves-bigbank ...
    python scripts/model_cards.py curves cursive-transformer-bigbank=runs/ct+runs/ct-finetune   (a run and its --init sequels)
    python scripts/model_cards.py table

Grids: 8 words of the held-out split the model was trained with (never in its training lines), each written
at bias 0, 0.5, 1 and 2 with a fixed seed -> figures/samples_<name>.png.  Curves: training loss (smoothed)
and validation NLL per point -> figures/loss_<name>.png; ``first+second`` joins a run with one started from it
by ``--init`` (the second's steps shifted by the steps of the checkpoint it started from).
"""

from __future__ import annotations

import sys

import numpy as np

from handwriting import evaluate, pretrained
from handwriting.generate import write
from handwriting.notebook_utils import save_figure
from handwriting.render import plot

BIASES = (0.0, 0.5, 1.0, 2.0)


def heldout_texts(model, n: int = 8) -> list[str]:
    chars = set(evaluate._chars_of(model) or "")
    held = evaluate.heldout_words(**evaluate._split_of(model))
    texts = [s.text for s in held if set(s.text) <= chars and 3 <= len(s.text) <= 10]
    rng = np.random.default_rng(0)
    return [texts[i] for i in sorted(rng.choice(len(texts), size=min(n, len(texts)), replace=False))]


def grid(name: str) -> None:
    import matplotlib.pyplot as plt

    model = pretrained.load_pretrained(name)
    texts = heldout_texts(model)
    fig, axes = plt.subplots(len(texts), len(BIASES), figsize=(2.6 * len(BIASES), 0.95 * len(texts)), squeeze=False)
    for j, b in enumerate(BIASES):
        w = write("\n".join(texts), model=model, bias=b, seed=1, max_line_chars=100)
        for i, line in enumerate(w.lines):
            ax = axes[i, j]
            plot(line, ax=ax, title="")
            if i == 0:
                ax.set_title(f"bias {b:g}", fontsize=10)
            if j == 0:
                ax.text(-0.05, 0.5, texts[i], transform=ax.transAxes, ha="right", va="center", fontsize=9)
    fig.suptitle(f"{name}: held-out words (not in its training lines)", fontsize=10)
    fig.tight_layout()
    print(save_figure(fig, f"samples_{name}.png", dpi=100))
    plt.close(fig)


def _scalars(run: str, offset: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import glob

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(glob.glob(f"{run}/tb")[0], size_guidance={"scalars": 0})
    ea.Reload()
    out = {}
    for tag in ("train/loss", "valid/nll_per_point"):
        if tag in ea.Tags()["scalars"]:
            ev = ea.Scalars(tag)
            out[tag] = (np.array([e.step for e in ev]) + offset, np.array([e.value for e in ev]))
    return out


def curves(name: str, run: str) -> None:
    import json
    from pathlib import Path

    import matplotlib.pyplot as plt

    runs = run.split("+")
    parts, offset, restarts = [], 0, []
    for i, r in enumerate(runs):
        if i:  # a sequel: its step 0 is the checkpoint it started from (--init)
            meta = json.loads((Path(r) / "last.json").read_text())
            offset += int(meta["training"]["init_from"]["steps"])  # steps counted from the first run's start
            restarts.append(offset)
        parts.append(_scalars(r, offset))
    for sc, cut in zip(parts, restarts):  # the first run past the checkpoint its sequel started from is not shown
        for tag, (steps, vals) in sc.items():
            sc[tag] = (steps[steps <= cut], vals[steps <= cut])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, sc in enumerate(parts):
        if "train/loss" in sc:
            steps, vals = sc["train/loss"]
            k = max(1, len(vals) // 40)
            smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1 :], smooth, color="C0", label="training loss (per point/token, smoothed)" if not i else None)
        if "valid/nll_per_point" in sc:
            steps, vals = sc["valid/nll_per_point"]
            ax.plot(steps, vals, "o-", color="C1", ms=3, label="validation NLL per point/token" if not i else None)
    for x in restarts:
        ax.axvline(x, color="0.6", ls="--", lw=1)
        ax.text(x, ax.get_ylim()[1], " fine-tuned from here (--init)", fontsize=7, va="top", color="0.4")
    ax.set_xlabel("step")
    ax.set_ylabel("nats")
    ax.set_title(name, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    print(save_figure(fig, f"loss_{name}.png", dpi=100))
    plt.close(fig)


def table() -> None:
    """A markdown table of every shipped model from its JSON description (what the README shows)."""
    import json

    print("| model | class | parameters | file | data | steps | wall time | validation NLL |")
    print("|---|---|---|---|---|---|---|---|")
    for m in pretrained.list_pretrained():
        meta = json.loads(pretrained.find_pretrained(m["name"]).with_suffix(".json").read_text())
        tr, met = meta.get("training", {}), meta.get("metrics", {})
        data = tr.get("data") if isinstance(tr.get("data"), str) else "bigbank + synthetic"
        wall = tr.get("wall_time_s")
        steps = tr.get("steps", "-")
        init = tr.get("init_from")
        while init and wall:  # fine-tuned (--init): count the runs it started from too
            steps = f"{init['steps']} + {steps}"
            wall += init.get("wall_time_s") or 0
            init = init.get("init_from")
        nll = met.get("nll_per_point")
        unit = "token" if m["class"] == "CursiveTransformer" else ("char" if m["class"] == "Recognizer" else "point")
        nll_s = f"{nll:.3f} nats/{unit}" if isinstance(nll, (int, float)) else "-"
        if m["class"] in ("SynthesisNetwork", "PredictionNetwork") and met.get("nll_per_sequence") is not None:
            nll_s += f", {met['nll_per_sequence']:.0f} nats/line"
        print(f"| `{m['name']}` | {m['class']} | {m['parameters'] / 1e6:.2f} M | {m['bytes'] / 2**20:.1f} MB | {data} | "
              f"{steps} | {wall / 60:.0f} min | {nll_s} |" if wall else "| - |")


def main(argv: list[str]) -> int:
    if argv[:1] == ["table"]:
        table()
        return 0
    if not argv or argv[0] not in ("grid", "curves"):
        print(__doc__)
        return 2
    for arg in argv[1:]:
        if argv[0] == "grid":
            grid(arg)
        else:
            name, _, run = arg.partition("=")
            curves(name, run)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
