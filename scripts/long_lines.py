"""Legibility of lines longer than the model was trained on: written whole, or in pieces joined into the line.

    python scripts/long_lines.py [MODEL] [--lines 48] [--bias 0.5 1 2] [--json PATH]

Lines of 38–50 characters are made of held-out bigbank words (never in the model's training lines; random
seed 0), written at each bias (a) in one go (``max_line_chars=100``) and (b) as ``write()`` does by default
(pieces of at most :func:`handwriting.generate.default_line_chars` characters, joined by
:func:`handwriting.generate.join_pieces`), and read by the recognizer (greedy).  Prints the character error
rate without spaces (how well the letters are written) and with them (the recognizer, trained on single
words, reads the spaces of either kind of line about equally well).  Each line is read as one sample.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from handwriting import evaluate
from handwriting.generate import assemble_lines, default_line_chars, line_pieces, resolve_model, write
from handwriting.strokes import Sample


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


def written(model, texts: list[str], bias: float, piece_chars: int, batch: int = 16) -> list[Sample]:
    """Each text as one line (its pieces joined as write() joins them), in data units."""
    out = []
    for k in range(0, len(texts), batch):
        chunk = texts[k : k + batch]
        w = write("\n".join(chunk), model=model, bias=bias, seed=k, max_line_chars=piece_chars, line_width=100)
        lines = assemble_lines([line_pieces(t, piece_chars) for t in chunk], [s.offsets for s in w.lines])
        out += [Sample(o, text=t) for o, t in zip(lines, chunk)]
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
            samples = written(model, texts, bias, piece_chars)
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
