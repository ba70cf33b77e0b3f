"""The shipped generators write what they wrote before the writing interface (``write_rows``) and
``handwriting.layout`` (issue #15): ``write("hello", model=NAME, seed=0, bias=1)`` — plain, and primed with
the model's own ``"ab"`` — pinned by its number of points and pen lifts, the sums of its ``dx`` and ``dy``, and
two of its points, all computed before that refactor (in float32 on one thread: the Graves networks' "auto"
precision would use bf16 matmuls where the CPU has them, so the pins force fp32 to hold on every CPU).  A change in what a model draws (its numbers, or the
order in which it uses the random generator) fails here; a deliberate one updates the pins and says why
(graves-synthesis-bigbank: new weights three times — fine-tuned on bigbank + synthbank, then retrained from scratch
with the default recipe continued to 3,200 steps, then continued 2,000 more at a quarter of its rate; the cursive transformers: the bias became min-p truncation instead of
a temperature, 2026-12-02; cursive-transformer-bigbank: new weights twice on 2026-12-03 — a warm restart averaged over its checkpoints, then a
from-scratch run averaged over its late checkpoints — and again on 2026-12-07: that network averaged with its continuation on
distilled words, a model soup; graves-synthesis-tiny primed, 2026-12-07: its window, left behind on a prime
cut short, is now moved on to the prime's end before it writes; and again the same day: a stroke of 6 points that it
ended before its window reached "hello", finishing the prime, is now left out of the row)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from handwriting.generate import resolve_model, write
from handwriting.strokes import Sample

# name: (points, pen lifts, (sum dx, sum dy), (dx, dy) of the second and the second-to-last point)
PLAIN = {
    "graves-synthesis-tiny": (127, 7, (0.15160436276346445, -0.0562960285533336),
                             ((0.015514684841036797, 0.03018760308623314), (0.0061352429911494255, -0.0033498490229249))),
    "cursive-transformer-tiny": (200, 1, (1.2892188255500514, -0.031416163430549204),  # bias as min-p, 2026-12-02
                                ((-0.016694843769073486, 0.004134367220103741), (-0.0011031023459509015, 0.02573366090655327))),
    "mdn-transformer-tiny": (200, 2, (1.821949286852032, 0.029699846461880952),
                            ((-0.006988849490880966, -0.008823920041322708), (0.012670695781707764, 0.004357405938208103))),
    "graves-synthesis-bigbank": (85, 1, (0.5751058680471033, 0.08470399770885706),  # new weights (continued 2,000 steps), 2026-12-02
                                 ((0.019578438252210617, 0.014620274305343628), (-0.0041213082149624825, 0.03004918247461319))),
    "cursive-transformer-bigbank": (130, 1, (0.6752096792624798, 0.09716203276184388),  # new weights (a soup of two runs), 2026-12-07
                                   ((0.03542318195104599, 0.06068580597639084), (0.02062094211578369, 0.009775510057806969))),
    "mdn-transformer-bigbank": (13, 2, (0.058481983840465546, 0.07229911477770656),
                               ((0.009902825579047203, 0.0020258305594325066), (-0.00010627927258610725, -0.010751758702099323))),
}  # fmt: skip
PRIMED = {
    "graves-synthesis-tiny": (113, 6, (0.1566327845212072, -0.0719774905446684),  # the prime's marks left out, 2026-12-07
                             ((0.002246388467028737, -0.011892377398908138), (0.0069636814296245575, -0.003933059982955456))),
    "cursive-transformer-tiny": (183, 2, (1.2601058071886655, -0.10773882421199232),  # bias as min-p, 2026-12-02
                                ((0.043920088559389114, 0.025636790320277214), (-0.0323481522500515, -0.04073349013924599))),
    "mdn-transformer-tiny": (200, 2, (1.7255656700581312, 0.4297967017337214),
                            ((-0.005424637347459793, -0.015054821036756039), (0.020604059100151062, -0.008531375788152218))),
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")  # the pins were computed on one thread


def _fp32(name):
    """The pretrained model, a copy of it with its matmul precision fixed at fp32 (the cache keeps the original)."""
    model = copy.deepcopy(resolve_model(name))
    if hasattr(model.config, "precision"):
        model.config.precision = "fp32"
    return model


def _check(offsets: np.ndarray, pinned) -> None:
    points, lifts, sums, (second, before_last) = pinned
    # absolute slack of a few float32 roundings: sums near zero differ by ~4e-7 between CPU kinds (AMD EPYC vs Xeon)
    assert (len(offsets), int(offsets[:, 2].sum())) == (points, lifts)
    assert offsets[:, :2].sum(0, dtype=np.float64).tolist() == pytest.approx(sums, rel=1e-5, abs=2e-6)
    assert offsets[[1, -2], :2].astype(float).tolist() == [pytest.approx(second, rel=1e-5, abs=2e-6),
                                                           pytest.approx(before_last, rel=1e-5, abs=2e-6)]


@pytest.mark.parametrize("name", PLAIN)
def test_shipped_generators_write_as_pinned(name):
    _check(write("hello", model=_fp32(name), seed=0, bias=1).offsets, PLAIN[name])


@pytest.mark.parametrize("name", PRIMED)
def test_primed_writing_is_as_pinned(name):
    model = _fp32(name)
    prime = write("ab", model=model, seed=1, bias=1, max_steps=30)  # short enough for the tiny transformer's context
    _check(write("hello", model=model, seed=0, bias=1, prime=Sample(prime.offsets, text="ab")).offsets, PRIMED[name])
