"""Legibility of lines longer than the model was trained on: written whole, or in pieces joined into the line.

    python scripts/long_lines.py [MODEL] [--lines 48] [--bias 0.5 1 2] [--json PATH]

Lines of 38–50 characters are made of held-out bigbank words (never in the model's training lines; random
seed 0), written at each bias (a) in one go (``max_line_chars=100``) and (b) as ``write()`` does by default
(pieces of at most :func:`handwriting.generate.default_line_chars` characters, joined by
:func:`handwriting.layout.join_pieces`), and read by the recognizer (greedy).  Prints the character error
rate without spaces (how well the letters are written) and with them (the recognizer, trained on single
words, reads the spaces of either kind of line about equally well).  Each line is read as one sample.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from handwriting import evaluate
from handwriting.generate import default_line_chars, resolve_model


def long_lines(n: int, seed: int = 0) -> list[str]:
    words = [w if isinstance(w, str) else w.text for w in evaluate.heldout_words()]
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        line: list[str] = []
        while len(" ".join(line)) < 38:
            line.append(words[rng.integers(len(words))])
        if len(" ".join(line)) <= 50:
            out.append(" ".join(line))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("model", nargs="?", default=None, help="pretrained name or checkpoint (default model)")
    parser.add_argument("--lines", type=int, default=48)
    parser.add_argument("--bias", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    rec = evaluate.load_recognizer()
    texts = long_lines(args.lines)
    pieces = default_line_chars(model)
    print(f"{len(texts)} lines, {np.mean([len(t) for t in texts]):.1f} characters on average; pieces of at most "
          f"{pieces} characters")
    rows = []
    for bias in args.bias:
        for how, piece_chars in (("whole", 100), ("pieces", pieces)):
            samples, _ = evaluate.write_lines(model, texts, bias, seed=0, batch=16, piece_chars=piece_chars)
            preds = rec.recognize(samples, beam_width=1, chars=evaluate._reading_chars(rec, None, texts))
            bare = evaluate.cer([p.replace(" ", "") for p in preds], [t.replace(" ", "") for t in texts])
            rows.append({"bias": bias, "written": how, "cer_without_spaces": bare, "cer": evaluate.cer(preds, texts)})
            print(f"bias {bias:g}  {how:6s}  CER without spaces {100 * bare:.1f}%  with spaces {100 * rows[-1]['cer']:.1f}%",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "lines": texts, "piece_chars": pieces, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
