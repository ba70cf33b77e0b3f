"""Write random strings with one network, keep those a reader reads back exactly, and save them as training
data for another network (sequence-level knowledge distillation, Kim & Rush 2016, with a recognizer as filter).

    python scripts/distill_data.py --model graves-synthesis-bigbank --reader recognizer-hands -n 8000 \
        -o runs/distill/graves-random.json

bigbank holds 3,150 training words; the cursive transformer overfits them (README, sessions 15-20), while the
Graves network writes unseen random strings of the same hand legibly.  This makes more words in that hand:

* texts: bigbank-like random words (:func:`~handwriting.datasets.synthetic.random_words`, seeds apart from the
  evaluation's) over the writer's alphabet, none of them a bigbank word or one of the evaluation's texts
  (``--seed`` 0-9 of ``handwriting evaluate legibility``, random strings and English phrases, n ≤ 1,000);
* written as ``handwriting evaluate`` writes them, cycling through ``--bias`` values batch by batch;
* kept only where ``--reader`` reads the text back exactly.  Use a reader that scores nothing you report
  (``recognizer-hands``: the legibility tables are read by ``recognizer-bigbank`` and ``-seed1``);
* put on bigbank's recording lattice (:func:`~handwriting.datasets.jsonink.bigbank_pen`): the writer was
  trained on bigbank thinned by 65% and writes continuous moves, while bigbank's points lie on a grid that the
  cursive transformer learns to the last bit, so off the lattice the same ink is another distribution to it
  (measured in the README, session 21).  The trainer thins every source by 65% again.

The output is a handwriting-samples file (``--data bigbank+json:PATH``) and a ``.manifest.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from handwriting._io import atomic_write
from handwriting.datasets.jsonink import bigbank_pen, save_samples
from handwriting.datasets.synthetic import random_words
from handwriting.evaluate import _bigbank_words, _chars_of, unseen_texts, write_lines
from handwriting.generate import resolve_model
from handwriting.reading import load_recognizer
from handwriting.strokes import Sample

#: random_words seeds for distillation texts: far from the evaluation's (EVAL_SEED + seed * 1009 + k)
TEXT_SEED = 7_000_000


def distill_texts(n: int, chars: str, exclude: set[str], seed: int = 0) -> list[str]:
    """``n`` distinct random words over ``chars``, none in ``exclude``."""
    out: list[str] = []
    seen = set(exclude)
    k = 0
    while len(out) < n:
        for w in random_words(2 * n, seed=TEXT_SEED + 1009 * seed + k, alphabet=chars):
            if w and w not in seen:
                seen.add(w)
                out.append(w)
        k += 1
    return out[:n]


def evaluation_texts(chars: str, seeds=range(10), n: int = 1000) -> set[str]:
    """Every text ``handwriting evaluate legibility`` draws for ``--seed`` in ``seeds`` with ``-n`` ≤ ``n``."""
    from handwriting.datasets.phrases import english_phrases

    texts: set[str] = set()
    for s in seeds:
        texts |= set(unseen_texts(n, s, chars))
        for phrase in english_phrases(n, s):
            texts |= set(phrase.split()) | {phrase}
    return texts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    ap.add_argument("--model", default="graves-synthesis-bigbank", help="the writer (teacher)")
    ap.add_argument("--reader", default="recognizer-hands", help="the recognizer that filters (not one you score with)")
    ap.add_argument("-n", type=int, default=8000, help="texts to write (about 80%% are kept)")
    ap.add_argument("--bias", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--output", "-o", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.n < 1 or args.batch < 1:
        ap.error(f"-n and --batch must be at least 1, got -n {args.n} and --batch {args.batch}")
    if min(args.bias) < 0:
        ap.error(f"--bias must be >= 0 (0 samples the model as trained), got {min(args.bias)}")

    t0 = time.perf_counter()
    writer = resolve_model(args.model)
    reader = load_recognizer(args.reader)
    bigbank = _bigbank_words()
    if bigbank is None:
        sys.exit("distill_data: bigbank is needed (its words are excluded); "
                 "set HANDWRITING_BIGBANK or run `handwriting data download bigbank`")
    chars = "".join(sorted(set(_chars_of(writer)) & set(_chars_of(reader)) - {" "}))
    exclude = {s.text for s in bigbank} | evaluation_texts(chars)
    texts = distill_texts(args.n, chars, exclude, seed=args.seed)

    kept: list[Sample] = []
    per_bias = {b: [0, 0] for b in args.bias}
    for k, start in enumerate(range(0, len(texts), args.batch)):
        chunk = texts[start : start + args.batch]
        bias = args.bias[k % len(args.bias)]
        lines, _ = write_lines(writer, chunk, bias, seed=args.seed * 1_000_003 + k, batch=args.batch)
        reads = reader.recognize(lines, chars=chars)
        for line, text, read in zip(lines, chunk, reads):
            per_bias[bias][0] += 1
            if read == text:
                per_bias[bias][1] += 1
                kept.append(Sample(bigbank_pen(line.offsets), text=text, writer=args.model))
        print(f"{start + len(chunk)}/{len(texts)} written, {len(kept)} kept ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_samples(args.output, kept, writer=args.model, units="bigbank data units (load_bigbank)")
    manifest = {
        "command": "python scripts/distill_data.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "writer": args.model, "reader": args.reader, "written": len(texts), "kept": len(kept),
        "kept_by_bias": {str(b): {"written": w, "kept": c} for b, (w, c) in per_bias.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    with atomic_write(args.output.with_suffix(".manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps(manifest, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
