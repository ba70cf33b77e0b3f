"""Your hand in five minutes, measured: fit a style file to 30 words of each held-out writer and compare what
the styled model writes with the unstyled (and the primed) model and with the writer's own hand.

    OMP_NUM_THREADS=1 python scripts/style_file_report.py [--writers backhand print ink-tall-italic] [--minutes 5]
        [--words 30] [--texts 8] [--tune SET] [--out runs/style-report] [--json PATH]

Per writer (:func:`handwriting.datasets.writers.held_out_writers`: no model here trained on them):

1. the learner's samples: the writer writes ``--words`` words — a named synthetic writer random words
   (:func:`~handwriting.datasets.synthetic.random_words`, seed 7), a restyled real hand (``ink-*``) held-out
   bigbank words (letters only, >= 3 characters; it has real ink for those only; step 4 then uses other
   held-out bigbank words too);
2. :func:`handwriting.style_fit.fit_style` on them with its defaults (``--minutes`` of wall time, one torch
   thread), saved to ``OUT/<writer>.style``: wall time, steps, the step kept, the file's size;
3. held-out NLL per point of 30 other words of the writer under the base model and the styled one;
4. ``--texts`` new texts of two unseen letters-only words (:func:`~handwriting.evaluate.unseen_texts`), each
   written by the writer (reference), by the styled model, by the base model, and by the base model primed
   with three of the learner's words (Graves §5.5, what ``--prime`` does), at bias 0.5 with the same seeds;
5. per condition the mean style features (:func:`~handwriting.evaluate.style_features`: slant, pen lifts per
   character, width per character) and the CER read by ``recognizer-bigbank``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from handwriting import evaluate
from handwriting.datasets.synthetic import random_words
from handwriting.datasets.torch_data import StitchedLines, StrokeDataset, collate
from handwriting.datasets.writers import held_out_writers
from handwriting.generate import resolve_model, write
from handwriting.reading import load_recognizer
from handwriting.style_file import load_style
from handwriting.style_fit import fit_style, prepare_samples

FEATURES = ("slant", "lifts_per_char", "log_width_per_char")


@torch.no_grad()
def held_out_nll(model, samples) -> float:
    prepared = prepare_samples(samples, model)
    ds = StrokeDataset(StitchedLines(prepared, (1, 2), num_lines=64, seed=99, max_chars=26), model.alphabet,
                       normalizer=model.normalizer)
    model.eval()
    nll = pts = 0.0
    for j in range(0, len(ds), 16):
        out = model.training_step(collate([ds[i] for i in range(j, min(j + 16, len(ds)))]))
        nll, pts = nll + out["nll_sum"], pts + out["points"]
    return nll / pts


def features(samples) -> dict:
    f = [evaluate.style_features(s) for s in samples]
    out = {k: float(np.mean([x[k] for x in f])) for k in FEATURES}
    out["width_per_char"] = math.exp(out.pop("log_width_per_char"))
    out["points_per_char"] = float(np.mean([len(s.offsets) / max(len(s.text.replace(" ", "")), 1) for s in samples]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writers", nargs="+", default=["backhand", "print"])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--words", type=int, default=30)
    ap.add_argument("--texts", type=int, default=8)
    ap.add_argument("--bias", type=float, default=0.5)
    ap.add_argument("--model", default="graves-synthesis-bigbank")
    ap.add_argument("--out", default="runs/style-report")
    ap.add_argument("--tune", default=None, help="tuning set (default: fit_style's)")
    ap.add_argument("--conditions", nargs="+", default=["writer", "styled", "unstyled", "primed"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = resolve_model(args.model)
    rec = load_recognizer()
    letters = "".join(c for c in base.alphabet.chars if c.isascii() and c.isalpha())
    need_ink = any(n.startswith("ink-") for n in args.writers)
    held_words = evaluate.heldout_words() if need_ink else None  # real ink no model here trained on
    hands = {w.name: w for w in held_out_writers(held_words)}
    # synthetic writers: random words; restyled real hands: held-out bigbank words (they have ink for them)
    bank = evaluate._bigbank_words()
    word_sets = {}
    learner = random_words(args.words, seed=7)
    exclude = set(learner) | ({s.text for s in bank} if bank is not None else set())
    pool = [w for w in evaluate.unseen_texts(20 * args.texts + 60, 11, letters, exclude) if len(w) >= 3]
    word_sets["synthetic"] = (learner, pool[:30], [f"{pool[30 + 2 * j]} {pool[31 + 2 * j]}" for j in range(args.texts)])
    if need_ink:
        ink = sorted({s.text for s in held_words if len(s.text) >= 3 and all(c in letters for c in s.text)})
        ink = [ink[i] for i in np.random.default_rng(7).permutation(len(ink))]
        n = args.words
        word_sets["ink"] = (ink[:n], ink[n : n + 30],
                            [f"{ink[n + 30 + 2 * j]} {ink[n + 31 + 2 * j]}" for j in range(args.texts)])
    chars = "".join(sorted(set(base.alphabet.chars) & set(evaluate._chars_of(rec) or "")))
    report = {"model": args.model, "minutes": args.minutes, "word_sets": word_sets,
              "torch_threads": torch.get_num_threads(), "writers": {}}
    for name in args.writers:
        w = hands[name]
        learner_words, nll_words, targets = word_sets[w.kind]
        samples = [w.write(t, 1000 + i) for i, t in enumerate(learner_words)]
        t0 = time.perf_counter()
        style = fit_style(samples, model=args.model, minutes=args.minutes, **({"tune": args.tune} if args.tune else {}))
        fit_s = time.perf_counter() - t0
        path = style.save(out_dir / f"{name}.style")
        styled = load_style(path)
        held = [w.write(t, 5000 + i) for i, t in enumerate(nll_words)]
        prime = w.write(" ".join(learner_words[:3]), 77)
        make = {
            "writer": lambda j, t: w.write(t, 2000 + j),
            "styled": lambda j, t: write(t, style=path, seed=3000 + j, bias=args.bias),
            "unstyled": lambda j, t: write(t, model=base, seed=3000 + j, bias=args.bias),
            "primed": lambda j, t: write(t, model=base, prime=prime, seed=3000 + j, bias=args.bias),
        }
        conds = {c: [make[c](j, t) for j, t in enumerate(targets)] for c in args.conditions}
        row = {
            "fit_wall_s": round(fit_s, 1), "training": style.meta["training"], "validation": style.meta["validation"],
            "file_bytes": path.stat().st_size, "tensors": sum(t.numel() for t in style.tensors.values()),
            "held_out_nll_per_point": {"unstyled": held_out_nll(base, held), "styled": held_out_nll(styled, held)},
            "conditions": {},
        }
        for c, ss in conds.items():
            preds = rec.recognize(ss, chars=chars)
            row["conditions"][c] = {**features(ss), "cer": evaluate.cer(preds, [s.text for s in ss]),
                                    "read": preds[:4]}
            from handwriting.export import save

            save(ss[0].offsets, out_dir / f"{name}-{c}.png")
        report["writers"][name] = row
        tr = row["training"]
        print(f"\n{name}: fit {row['fit_wall_s']} s, {tr['steps']} steps (kept {tr['kept_step']}, stopped by "
              f"{tr['stopped_by']}), {row['file_bytes'] / 1024:.0f} KB; held-out NLL/point "
              f"{row['held_out_nll_per_point']['unstyled']:.3f} -> {row['held_out_nll_per_point']['styled']:.3f}")
        print(f"  {'':10} {'slant':>7} {'lifts/ch':>8} {'width/ch':>8} {'pts/ch':>7} {'CER':>6}")
        for c, r in row["conditions"].items():
            print(f"  {c:10} {r['slant']:7.3f} {r['lifts_per_char']:8.3f} {r['width_per_char']:8.4f} "
                  f"{r['points_per_char']:7.1f} {r['cer']:6.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
