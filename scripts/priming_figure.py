"""Graves Fig. 17 with hands the model never saw: a prime from each of several held-out hands, and what the model
writes after it (and unprimed, for comparison).

    python scripts/priming_figure.py [--model graves-synthesis-hands] [--text "quick brown fox"] [--bias 0.5]
                                     [--hands backhand print ink-tall-italic ink-upright-narrow] [--out PATH]

The primes are held-out bigbank words written by held-out hands (``datasets.writers.held_out_writers``); the
same seed is used for every row, so the rows differ only in the prime.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from handwriting.datasets.writers import held_out_writers  # noqa: E402
from handwriting.evaluate import heldout_words  # noqa: E402
from handwriting.generate import resolve_model, write  # noqa: E402
from handwriting.notebook_utils import save_figure  # noqa: E402
from handwriting.render import plot  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    ap.add_argument("--model", default="graves-synthesis-hands")
    ap.add_argument("--text", default="quick brown fox")
    ap.add_argument("--bias", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hands", nargs="+", default=["backhand", "print", "ink-tall-italic", "ink-upright-narrow"])
    ap.add_argument("--out", default="graves_fig17_many_hands.png", help="file name under figures/")
    args = ap.parse_args(argv)

    model = resolve_model(args.model)
    words = heldout_words()
    prime_text = " ".join([s.text for s in words if s.text.isalpha() and 4 <= len(s.text) <= 7][:2])
    hands = {w.name: w for w in held_out_writers(words)}
    rows = [("unprimed", None)] + [(name, hands[name].write(prime_text, args.seed)) for name in args.hands]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 1.3 * len(rows)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.4]})
    for r, (name, prime) in enumerate(rows):
        written = write(args.text, model=model, bias=args.bias, seed=args.seed, prime=prime)
        if prime is not None:
            plot(prime, ax=axes[r, 0], title=f"prime: {name}")
        else:
            axes[r, 0].set_axis_off()
            axes[r, 0].set_title("no prime", fontsize=9)
        plot(written, ax=axes[r, 1], title=f"{args.model} writes {args.text!r}")
    fig.suptitle(f"Primed by hands it never saw (cf. Graves Fig. 17), bias {args.bias:g}")
    fig.tight_layout()
    print(save_figure(fig, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
