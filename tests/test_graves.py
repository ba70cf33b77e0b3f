"""Graves' networks: the fused training path equals the readable step-by-step reference (``forward_reference``),
the window behaves,
sampling stops, primes and is reproducible, and a small synthesis network learns a real word."""

import json
import math
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handwriting import strokes as S
from handwriting.models.graves import (
    REHEARSAL_SHIFTS,
    drop_leading,
    GravesConfig,
    PredictionNetwork,
    Prime,
    SynthesisNetwork,
    _shift_inputs,
    concat_texts,
    rehearsed_lift_offsets,
    sample_rows,
    shift_for_lifts,
    window_stop,
)
from handwriting.models.base import Priming
from handwriting.models.graves_fused import StepSampler, _LSTMRecurrence, _WindowRecurrence
from handwriting.models.mdn import mdn_nll

SMALL = dict(alphabet_size=12, hidden=16, layers=3, mixtures=3, window_mixtures=4, precision="fp32")


class _Batch:
    def __init__(self, x, text, x_mask=None):
        self.x = x
        self.x_mask = torch.ones(x.shape[:2], dtype=torch.bool) if x_mask is None else x_mask
        self.text = text
        self.text_mask = text != 0


def _data(B=3, T=20, U=5, A=12, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, 3, generator=g, dtype=dtype)
    x[..., 2] = (torch.rand(B, T, generator=g) < 0.2).to(dtype)
    text = torch.randint(1, A, (B, U), generator=g)
    text[1, 3:] = 0  # a shorter text in row 1
    return x, text


def _params_close(a, b, **tol):
    for name in ("pi_logits", "mu", "log_sigma", "rho", "eos_logit"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), **tol)


# ----------------------------------------------------------------------------------------------------------
# the fused path is the same model


def test_synthesis_forward_equals_naive_reference_fp32():
    torch.manual_seed(0)
    model = SynthesisNetwork(GravesConfig(**SMALL))
    x, text = _data()
    inp = _shift_inputs(x)
    out = model(inp, text, internals=True)
    with torch.no_grad():
        ref = model.forward_reference(inp, text)
    _params_close(out.params, ref.params, atol=1e-5, rtol=1e-5)
    for name in ("phi", "alpha", "beta", "kappa", "w"):
        torch.testing.assert_close(out.internals[name], ref.internals[name], atol=1e-5, rtol=1e-5, msg=name)
    for name in ("h", "c", "kappa", "phi"):
        torch.testing.assert_close(getattr(out.state, name), getattr(ref.state, name), atol=1e-5, rtol=1e-5, msg=name)
    # both continue a sequence from a state the same way
    more = _shift_inputs(_data(T=6, seed=1)[0])
    with torch.no_grad():
        a, b = model(more, text, state=out.state), model.forward_reference(more, text, state=ref.state)
    _params_close(a.params, b.params, atol=1e-5, rtol=1e-5)


def test_synthesis_gradients_equal_naive_reference_fp64():
    torch.manual_seed(1)
    model = SynthesisNetwork(GravesConfig(**SMALL)).double()
    x, text = _data(dtype=torch.float64)
    inp = _shift_inputs(x)
    params = list(model.parameters())
    g_fast = torch.autograd.grad(mdn_nll(model(inp, text).params, x).sum(), params)
    g_ref = torch.autograd.grad(mdn_nll(model.forward_reference(inp, text).params, x).sum(), params)
    for (name, _), a, b in zip(model.named_parameters(), g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9, msg=name)


@pytest.mark.parametrize("kind", ["synthesis", "prediction"])
def test_graves_clipping_equals_clamping_every_gate_and_output_derivative(kind):
    """set_gradient_clipping clamps inside the hand-written backward exactly as forward_reference's hooks on
    the gate pre-activations and outputs do, and the limits are small enough here to change the gradients."""
    torch.manual_seed(3)
    cls = SynthesisNetwork if kind == "synthesis" else PredictionNetwork
    model = cls(GravesConfig(**SMALL)).double()
    x, text = _data(dtype=torch.float64)
    inp = _shift_inputs(x)
    params = list(model.parameters())

    args = (inp, text) if kind == "synthesis" else (inp,)

    def grads(forward):
        return torch.autograd.grad(mdn_nll(forward(*args).params, x).sum(), params)

    unclipped = grads(model)
    model.set_gradient_clipping(output=0.5, lstm=0.05)
    try:
        g_fast, g_ref = grads(model), grads(model.forward_reference)
    finally:
        model.set_gradient_clipping(None, None)
    for (name, _), a, b in zip(model.named_parameters(), g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9, msg=name)
    assert any(not torch.allclose(a, b) for a, b in zip(g_fast, unclipped)), "the limits should bite"
    for a, b in zip(grads(model), unclipped):  # switched off again
        torch.testing.assert_close(a, b)


def test_prediction_forward_and_gradients_equal_naive_reference():
    torch.manual_seed(2)
    model = PredictionNetwork(GravesConfig(**SMALL)).double()
    x, _ = _data(dtype=torch.float64)
    inp = _shift_inputs(x)
    out = model(inp)
    ref = model.forward_reference(inp)
    _params_close(out.params, ref.params, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(out.state.h, ref.state.h, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(out.state.c, ref.state.c, atol=1e-10, rtol=1e-10)
    params = list(model.parameters())
    g_fast = torch.autograd.grad(mdn_nll(out.params, x).sum(), params)
    g_ref = torch.autograd.grad(mdn_nll(ref.params, x).sum(), params)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_recurrences_gradcheck_including_initial_states():
    g = torch.Generator().manual_seed(3)
    T, B, H, U, K = 4, 2, 3, 3, 2
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)

    def window(gx, w_hh, E, w_win, b_win, h0, c0, k0, p0):
        hs, phis, c, _ = _WindowRecurrence.apply(gx, w_hh, E, w_win, b_win, mask, h0, c0, k0, p0, 0.3, torch.float64)
        return hs, phis, c

    args = (r(T, B, 4 * H), r(4 * H, H), r(B, U, 4 * H), r(3 * K, H), r(3 * K), r(B, H), r(B, H), r(B, K), r(B, U))
    assert torch.autograd.gradcheck(window, args)

    def lstm(gx, w_hh, h0, c0):
        return _LSTMRecurrence.apply(gx, w_hh, h0, c0, torch.float64)

    assert torch.autograd.gradcheck(lstm, (r(T, B, 4 * H), r(4 * H, H), r(B, H), r(B, H)))


def test_state_continues_a_sequence():
    torch.manual_seed(4)
    model = SynthesisNetwork(GravesConfig(**SMALL))
    x, text = _data(T=24)
    inp = _shift_inputs(x)
    whole = model(inp, text)
    first = model(inp[:, :10], text)
    second = model(inp[:, 10:], text, state=first.state)
    torch.testing.assert_close(whole.params.mu[:, 10:], second.params.mu, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(whole.state.h, second.state.h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(whole.state.kappa, second.state.kappa, atol=1e-5, rtol=1e-5)


def test_training_step_contract_and_gradients_reach_every_parameter():
    torch.manual_seed(5)
    for cls in (SynthesisNetwork, PredictionNetwork):
        model = cls(GravesConfig(**SMALL))
        x, text = _data()
        x_mask = torch.ones(3, 20, dtype=torch.bool)
        x_mask[2, 15:] = False
        out = model.training_step(_Batch(x, text, x_mask))
        assert set(out) >= {"loss", "nll_sum", "points", "sequences"}
        assert out["points"] == 55 and out["sequences"] == 3
        assert isinstance(out["nll_sum"], float)
        assert abs(out["loss"].item() - out["nll_sum"] / 55) < 1e-4
        out["loss"].backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


def test_bf16_precision_runs_and_stays_close_to_fp32():
    torch.manual_seed(6)
    model = SynthesisNetwork(GravesConfig(**SMALL))
    x, text = _data()
    fp32 = model.training_step(_Batch(x, text))["loss"].item()
    model.config.precision = "bf16"
    out = model.training_step(_Batch(x, text))
    out["loss"].backward()
    assert abs(out["loss"].item() - fp32) < 0.02 * abs(fp32) + 0.02
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# ----------------------------------------------------------------------------------------------------------
# the window


def test_window_shapes_padding_and_monotone_kappa():
    torch.manual_seed(7)
    model = SynthesisNetwork(GravesConfig(**SMALL))
    x, text = _data()
    out = model(_shift_inputs(x), text, internals=True)
    it = out.internals
    assert it["phi"].shape == (3, 20, 5) and it["kappa"].shape == (3, 20, 4) and it["w"].shape == (3, 20, 12)
    assert (it["phi"][1, :, 3:] == 0).all()  # padded characters get no weight
    assert (it["phi"] >= 0).all()
    assert (it["kappa"].diff(dim=1) > 0).all()  # κ only moves forward
    onehot = F.one_hot(text, 12).float()
    torch.testing.assert_close(it["w"], torch.bmm(it["phi"], onehot))
    assert out.state.phi.shape == (3, 5) and out.state.kappa.shape == (3, 4)


def test_window_stop_rule_on_constructed_phi():
    phi = torch.tensor([[0.1, 0.5, 0.2, 0.0], [0.0, 0.1, 0.05, 0.0], [0.2, 0.3, 0.0, 0.0]])
    end = torch.tensor([0.3, 0.2, 0.3])
    assert window_stop(phi, end).tolist() == [False, True, False]  # 0.3 = max is not "greater"


def _marching_model(rate=0.25, beta=8.0):
    """A synthesis network whose window moves by exactly ``rate`` characters per step."""
    cfg = GravesConfig(**{**SMALL, "kappa_scale": 1.0})
    model = SynthesisNetwork(cfg)
    K = cfg.window_mixtures
    with torch.no_grad():
        model.window.weight.zero_()
        model.window.bias[:K] = 0.0  # α = 1
        model.window.bias[K : 2 * K] = float(np.log(beta))
        model.window.bias[2 * K :] = float(np.log(rate))
    return model


def test_batched_sampling_rows_stop_at_their_own_time():
    model = _marching_model(rate=0.25)
    text = torch.tensor([[1, 2, 0, 0, 0], [3, 4, 5, 6, 7], [2, 3, 4, 0, 0]])
    res = model.sample(text, seed=0, points_per_char=40)
    assert res.stopped.all()
    # the window passes character U + 1/2 after (U + 1/2) / rate steps
    expected = torch.tensor([(2 + 0.5) / 0.25, (5 + 0.5) / 0.25, (3 + 0.5) / 0.25])
    assert (res.lengths.float() - expected).abs().max() <= 1.0
    assert res.strokes.shape[1] == int(res.lengths.max())
    assert (res.strokes[0, int(res.lengths[0]) :] == 0).all()
    # the length guard stops a window that never moves
    still = _marching_model(rate=1e-6)
    res = still.sample(text, seed=0, points_per_char=3)
    assert not res.stopped.any() and res.lengths.tolist() == [6, 15, 9]
    assert [len(s) for s in res.sequences()] == [6, 15, 9] and all(s[-1, 2] == 1 for s in res.sequences())


@pytest.mark.parametrize("lift_logit, extra", [(20.0, 0), (-20.0, 1)])
def test_the_point_drawn_after_the_window_passed_the_text_is_kept_only_inside_a_stroke(lift_logit, extra):
    """The point sampled at the step the window passes the last character belongs to no letter: where the pen had
    just lifted it would begin a new stroke — a stray dot after the text, which the recognizer read as '.' or "'" —
    so the row ends before it; in the middle of a stroke it is the stroke's last point and is kept."""
    model = _marching_model(rate=0.25)
    with torch.no_grad():  # the pen lifts after every point (or never)
        model.head.linear.weight[0].zero_()
        model.head.linear.bias[0] = lift_logit
    text = torch.tensor([[1, 2, 0, 0, 0], [3, 4, 5, 6, 7], [2, 3, 4, 0, 0]])
    res = model.sample(text, seed=0, points_per_char=40)
    assert res.stopped.all()
    assert res.lengths.tolist() == [10 + extra, 22 + extra, 14 + extra]  # (U + 1/2) / rate steps, + the last point


# ----------------------------------------------------------------------------------------------------------
# sampling


def test_stepped_sampling_is_the_same_model_as_forward():
    torch.manual_seed(8)
    model = SynthesisNetwork(GravesConfig(**SMALL))
    text = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]])
    res = model.sample(text, bias=0.5, seed=3, internals=True, points_per_char=6)
    out = model(_shift_inputs(res.strokes), text, internals=True)
    for b in range(2):
        n = int(res.lengths[b])
        _params_close(res.params[b, :n], out.params[b, :n], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(res.internals["phi"][b, :n], out.internals["phi"][b, :n], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(res.internals["kappa"][b, :n], out.internals["kappa"][b, :n], atol=1e-5, rtol=1e-5)
    biased = res.biased_params()
    torch.testing.assert_close(biased.log_sigma, res.params.log_sigma - 0.5)


def test_sampling_is_reproducible_with_a_seed():
    torch.manual_seed(9)
    model = SynthesisNetwork(GravesConfig(**SMALL))
    text = torch.tensor([[1, 2, 3], [4, 5, 0]])
    a = model.sample(text, bias=0.3, seed=11, points_per_char=5)
    b = model.sample(text, bias=0.3, generator=torch.Generator().manual_seed(11), points_per_char=5)
    c = model.sample(text, bias=0.3, seed=12, points_per_char=5)
    assert torch.equal(a.strokes, b.strokes) and torch.equal(a.lengths, b.lengths)
    assert not torch.equal(a.strokes, c.strokes)
    # one bias per row
    res = model.sample(text, bias=torch.tensor([0.0, 10.0]), seed=1, points_per_char=5)
    assert res.bias.tolist() == [0.0, 10.0]


def test_concat_texts():
    a = torch.tensor([[1, 2, 0], [3, 0, 0]])
    b = torch.tensor([[5, 6], [7, 0]])
    text, mask = concat_texts(a, a != 0, b, b != 0)
    assert text.tolist() == [[1, 2, 5, 6], [3, 7, 0, 0]]
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]


def test_priming_carries_the_state_of_the_prime():
    torch.manual_seed(10)
    model = SynthesisNetwork(GravesConfig(**SMALL))
    x, ptext = _data(B=2, T=12, U=3)
    ptext[1] = torch.tensor([4, 5, 0])
    x_mask = torch.ones(2, 12, dtype=torch.bool)
    x_mask[1, 8:] = False  # the second prime is shorter
    new = torch.tensor([[6, 7], [8, 0]])
    full, full_mask = concat_texts(ptext, ptext != 0, new, new != 0)
    (h, c, kappa, w), last = model.prime_state(Prime(x, ptext, x_mask), full, full_mask)
    # the state after priming equals the fused forward over each prime alone
    for b, n in ((0, 12), (1, 8)):
        out = model(_shift_inputs(x[b : b + 1, :n]), full[b : b + 1], full_mask[b : b + 1])
        torch.testing.assert_close(torch.stack(h)[:, b], out.state.h[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(kappa[b], out.state.kappa[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(last[b], x[b, n - 1])
    primed = model.sample(new, seed=0, prime=Prime(x, ptext, x_mask), points_per_char=10, internals=True)
    plain = model.sample(new, seed=0, points_per_char=10)
    assert primed.text.tolist() == full.tolist()
    assert primed.internals["phi"].shape[-1] == full.shape[1]
    n = min(primed.strokes.shape[1], plain.strokes.shape[1])
    assert not torch.allclose(primed.strokes[:, :n], plain.strokes[:, :n])


def test_shift_for_lifts_solves_the_line_through_log_lifts_for_the_hands_count():
    shifts = (-1.5, -0.5, 0.5, 1.5, 2.5)
    written = [math.exp(2.0 + 0.4 * d) - 0.5 for d in shifts]  # exactly log-linear (half a lift added back)
    assert shift_for_lifts(shifts, written, math.exp(2.0 + 0.4 * 0.7) - 0.5) == pytest.approx(0.7, abs=1e-9)
    assert shift_for_lifts(shifts, written, math.exp(2.0 + 0.4 * -1.0) - 0.5) == pytest.approx(-1.0, abs=1e-9)
    assert shift_for_lifts(shifts, written, 1e6) == pytest.approx(2.5)  # never beyond the shifts tried
    assert shift_for_lifts(shifts, written, 0) == pytest.approx(-1.5)
    assert shift_for_lifts(shifts, [5, 5, 4, 5, 3], 20) == 0.0  # lifts that do not rise with the shift: no shift
    with pytest.raises(ValueError, match="as many"):
        shift_for_lifts(shifts, written[:3], 4)


def test_rehearsal_writes_every_line_at_every_shift_and_counts_only_real_points(monkeypatch):
    """rehearse_lifts against a direct computation: a stand-in for sample whose rows lift c_j * e^(s/2) times
    (line j, shift s), with lifts also in the padding after each row's length, which must not count."""
    model = SynthesisNetwork(GravesConfig(**SMALL))
    prime = Prime(torch.zeros(1, 4, 3), torch.tensor([[3, 4, 11]]))
    lines = Prime(torch.zeros(2, 5, 3), torch.tensor([[5, 6, 0], [7, 8, 9]]), torch.ones(2, 5, dtype=torch.bool))
    lines.x[0, :, 2] = 1.0  # the hand lifted 5 + 2 times in its lines...
    lines.x[1, 3:, 2] = 1.0
    lines.x_mask[0, 3:] = False  # ...of which 3 + 2 are real points
    c = torch.tensor([2.0, 3.0])
    seen = {}

    def fake(text, text_mask=None, bias=0.0, generator=None, prime=None, lift_offset=None, **kw):
        seen.update(text=text, bias=bias, prime=prime)
        line = torch.tensor([0 if int(t[0]) == 5 else 1 for t in text])
        lifts = c[line] * torch.exp(lift_offset / 2)
        strokes = torch.zeros(len(text), 3, 3)
        strokes[:, 0, 2] = lifts
        strokes[:, 2, 2] = 100.0  # after the row's end
        return SimpleNamespace(strokes=strokes, lengths=torch.full((len(text),), 2))

    monkeypatch.setattr(model, "sample", fake)
    got = model.rehearse_lifts(prime, lines, bias=1.5)
    per_shift = [float(c.sum()) * math.exp(s / 2) for s in REHEARSAL_SHIFTS]
    assert got == pytest.approx(shift_for_lifts(REHEARSAL_SHIFTS, per_shift, 5.0), abs=1e-6)  # float32 counts
    assert seen["bias"] == 1.5 and seen["prime"].x.shape[0] == len(seen["text"]) == 2 * len(REHEARSAL_SHIFTS) * 2


def test_a_prime_that_lifts_often_makes_the_network_lift_often_and_the_writing_keeps_its_random_numbers():
    """An untrained head that rarely lifts the pen, primed with a line that lifts at every point: the rehearsal
    finds a shift up, the writing then lifts more often, and it draws the same random numbers as writing with
    that shift given (the rehearsal draws its own, seeded from the generator without advancing it)."""
    torch.manual_seed(4)
    model = SynthesisNetwork(GravesConfig(**SMALL)).eval()
    with torch.no_grad():
        model.head.linear.bias[0] = -4.0
    off = torch.randn(16, 3, generator=torch.Generator().manual_seed(0)).numpy()
    off[:, 2] = 1.0
    priming = Priming(off, torch.tensor([4, 5, 11]))
    new = torch.tensor([[6, 7, 8]] * 3)
    shift = rehearsed_lift_offsets(model, priming, [0.0] * 3, torch.Generator().manual_seed(5))
    assert shift.shape == (3,) and float(shift[0]) > 1.0
    g = torch.Generator().manual_seed(5)
    before = g.get_state().clone()
    rehearsed_lift_offsets(model, priming, [0.0] * 3, g)
    assert torch.equal(g.get_state(), before)
    kw = dict(text_mask=new != 0, bias=[0.0] * 3, prime=priming, max_steps=60)
    written = model.write_rows(new, generator=torch.Generator().manual_seed(5), **kw)
    given = sample_rows(model, new, generator=torch.Generator().manual_seed(5), lift_offset=shift, **kw)
    plain = sample_rows(model, new, generator=torch.Generator().manual_seed(5), **kw)
    for a, b in zip(written.offsets, given.offsets):
        np.testing.assert_array_equal(a, b)
    lifts = lambda rows: sum(int(o[:, 2].sum()) for o in rows.offsets)  # noqa: E731
    assert lifts(written) > 2 * max(lifts(plain), 1)


def test_sampling_moves_a_window_left_behind_on_the_prime_on_to_its_end():
    """Three points of ink cannot carry an untrained window over seven characters: without catching up it would
    write the prime's text again.  Sampling moves such a window on to the prime's closing space, and leaves a
    window that kept up (a one-character prime) as the prime left it."""
    torch.manual_seed(12)
    model = SynthesisNetwork(GravesConfig(**SMALL))
    x, _ = _data(B=2, T=3, U=1)
    ptext = torch.tensor([[1, 2, 3, 4, 5, 6, 11], [7, 11, 0, 0, 0, 0, 0]])  # 11: the closing space
    new = torch.tensor([[8, 9], [8, 9]])
    full, full_mask = concat_texts(ptext, ptext != 0, new, new != 0)
    prime = Prime(x, ptext)
    (_, _, kappa, _), _ = model.prime_state(prime, full, full_mask)
    (_, _, caught, _), _ = model.prime_state(prime, full, full_mask, catch_up=True)
    pos = torch.arange(1, full.shape[1] + 1, dtype=torch.float32)

    def peak(k, row):  # where an even window over the K centres weighs most
        return int(pos[torch.exp(-(k[row].unsqueeze(1) - pos).square()).sum(0).argmax()])

    assert peak(kappa, 0) == 1 and peak(caught, 0) >= 6  # from the prime's first character to its end
    shift = caught[0] - kappa[0]
    assert torch.allclose(shift, shift[0].expand_as(shift)) and float(shift[0]) > 1  # the window moved as a whole
    torch.testing.assert_close(caught[1], kappa[1])
    res = model.sample(new, seed=0, prime=prime, points_per_char=10, internals=True)
    assert int(res.internals["phi"][0, 0].argmax()) + 1 >= 6  # the first sampled point reads the prime's end or after


def test_drop_leading_keeps_the_rest_of_the_row_where_it_was_drawn():
    """The points cut from a row's start move the first kept point, so every kept point stays where the network
    drew it; a row that would be left empty is kept whole; per-step records are cut alike."""
    out = torch.tensor([
        [[1.0, 0, 0], [2, 1, 1], [3, 0, 0], [1, 1, 1], [0, 0, 0]],
        [[1.0, 1, 1], [1, 0, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0]],
        [[4.0, 0, 0], [1, 2, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]],
    ])
    lengths, lead = torch.tensor([4, 3, 2]), torch.tensor([2, 0, 2])
    rec = {"phi": torch.arange(15.0).view(5, 3)}  # (T, B)
    cut, new_len, new_rec = drop_leading(out.clone(), lengths, lead, rec)
    assert new_len.tolist() == [2, 3, 2]
    ends = lambda o, n: torch.cumsum(o[:n, :2], 0)  # noqa: E731  the pen's positions
    torch.testing.assert_close(ends(cut[0], 2), ends(out[0], 4)[2:])
    torch.testing.assert_close(cut[0, :2, 2], out[0, 2:4, 2])
    torch.testing.assert_close(cut[1], out[1])
    torch.testing.assert_close(cut[2], out[2])
    assert new_rec["phi"][:, 0].tolist() == [6.0, 9.0, 12.0, 0.0, 0.0] and new_rec["phi"][:, 1].tolist() == [1.0, 4.0, 7.0, 10.0, 13.0]


def test_a_primed_row_begins_with_a_stroke_its_window_wrote_on_the_new_text(monkeypatch):
    """Strokes an (untrained) network ends while its window is still on the prime would be stray marks before
    the text: sampling leaves them out, so the first stroke of every row ends after the window reached the new
    text.  Without :func:`drop_leading` some row would begin with such a stroke."""
    import handwriting.models.graves as G

    torch.manual_seed(5)
    model = SynthesisNetwork(GravesConfig(**SMALL))
    x = _data(B=2, T=30, U=1)[0][:1]
    ptext = torch.tensor([[1, 2, 11]])  # 11: the closing space
    new = torch.tensor([[8, 9, 10]] * 6)
    prime = Prime(x.expand(6, -1, -1).contiguous(), ptext.expand(6, -1).contiguous())

    def first_stroke_on_text(res):
        ok = []
        for b in range(new.shape[0]):
            n = int(res.lengths[b])
            pen, at = res.strokes[b, :n, 2], res.internals["phi"][b, :n].argmax(-1)
            if not bool((at >= 3).any()):
                continue  # the window never reached the text: the row is kept whole
            end = int((pen > 0.5).nonzero()[0]) if bool((pen > 0.5).any()) else n - 1
            ok.append(bool((at[: end + 1] >= 3).any()))
        return ok

    ok = first_stroke_on_text(model.sample(new, seed=0, prime=prime, points_per_char=20, internals=True))
    assert ok and all(ok)
    monkeypatch.setattr(G, "drop_leading", lambda out, lengths, lead, rec=None: (out, lengths, rec))
    assert not all(first_stroke_on_text(model.sample(new, seed=0, prime=prime, points_per_char=20, internals=True)))


def test_unconditional_sampling():
    torch.manual_seed(11)
    model = PredictionNetwork(GravesConfig(**SMALL))
    res = model.sample(3, 30, bias=0.2, seed=0, internals=True)
    assert res.strokes.shape == (3, 30, 3) and res.lengths.tolist() == [30, 30, 30]
    out = model(_shift_inputs(res.strokes))
    _params_close(res.params, out.params, atol=1e-5, rtol=1e-5)
    again = model.sample(3, 30, bias=0.2, seed=0)
    assert torch.equal(res.strokes, again.strokes)


def test_bad_inputs_raise_clear_errors():
    model = SynthesisNetwork(GravesConfig(**SMALL))
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        model(torch.zeros(2, 5), torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="alphabet_size"):
        model(torch.zeros(1, 5, 3), torch.tensor([[99]]))
    with pytest.raises(ValueError, match="at least one character"):
        model.sample(torch.tensor([[1, 2], [0, 0]]))
    with pytest.raises(ValueError, match="precision"):
        GravesConfig(precision="fp8")


# ----------------------------------------------------------------------------------------------------------
# learning a real word


def _bigbank_items(path, n):
    """The first ``n`` items of bigbank, decoded lazily (the loader has its own module and tests)."""
    with zipfile.ZipFile(path) as z:
        name = next(m for m in z.namelist() if m.endswith("bigbank_3500.json") and not m.startswith("__MACOSX"))
        raw = z.open(name).read(400_000).decode("utf-8", "ignore")
    dec, i, out = json.JSONDecoder(), raw.index("[") + 1, []
    while len(out) < n:
        while raw[i] in " ,\r\n\t":
            i += 1
        obj, i = dec.raw_decode(raw, i)
        out.append(obj)
    return out


def test_small_network_overfits_one_real_word(bigbank_path):
    item = next(it for it in _bigbank_items(bigbank_path, 20) if it["metadata"]["asciiSequence"] == "fru")
    word = item["metadata"]["asciiSequence"]
    p = np.asarray(item["points"], dtype=np.float64)
    points = np.stack([p[:, 0] * item["metadata"]["aspectRatio"], -p[:, 1], 1 - p[:, 2]], 1)
    off = S.downsample(S.to_offsets(points).astype(np.float32), 0.65)
    off[0, :2] = 0
    off[:, :2] /= off[:, :2].std(0)
    T = len(off)
    chars = sorted(set(word))
    text = torch.tensor([[chars.index(ch) + 1 for ch in word]])
    cfg = GravesConfig(
        alphabet_size=len(chars) + 1, hidden=48, layers=2, mixtures=4, window_mixtures=3,
        kappa_scale=len(word) / T, precision="fp32",
    )
    torch.manual_seed(0)
    model = SynthesisNetwork(cfg)
    batch = _Batch(torch.from_numpy(off)[None], text)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only adds synchronisation on a busy machine
    try:
        _overfit(model, batch, text, off)
    finally:
        torch.set_num_threads(threads)


def _overfit(model, batch, text, off):
    T = len(off)
    iters, lr = 200, 0.03
    opt = torch.optim.Adam(model.parameters(), lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=iters, pct_start=0.2)
    first = None
    for _ in range(iters):
        loss = model.training_step(batch)["loss"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        final = model.training_step(batch)["loss"].item()
    assert first > 3.0 and final < -1.5, (first, final)  # nats per point
    # at a high bias the network writes (nearly) the word it learned.  The pen-lift bit is still sampled
    # (Graves' bias leaves it alone), so one unlucky lift can derail a single sample: judge the median of 8.
    rows = 8
    res = model.sample(text.repeat(rows, 1), bias=10.0, seed=0)
    assert bool(res.stopped.all()), "the window should pass the last character"
    lengths = res.lengths.numpy()
    assert 0.5 * T <= np.median(lengths) <= 1.5 * T, (lengths, T)
    target = np.cumsum(off[:, :2], 0)
    spread = float(np.linalg.norm(target.std(0)))
    errors = []
    for i in range(rows):
        n = int(lengths[i])
        ours = np.cumsum(res.strokes[i, :n, :2].numpy(), 0)
        k = min(n, T)
        errors.append(float(np.sqrt(((ours[:k] - target[:k]) ** 2).sum(1).mean())) / spread)
    assert np.median(errors) < 0.5, errors


def test_fast_step_sampler_draws_from_the_biased_mixture():
    from handwriting.models.mdn import split_raw

    M, N = 3, 100_000
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(1, 1 + 6 * M, generator=g).expand(N, -1).contiguous()
    for bias in (0.0, 1.0):
        sampler = StepSampler(N, M, 1, bias, torch.Generator().manual_seed(1), "cpu", -7.0, 4.0, 1 - 1e-4)
        fast = sampler(raw, 0)
        p = split_raw(raw[:1], M)
        pi = torch.softmax(p.pi_logits[0] * (1 + bias), 0)
        sigma = (p.log_sigma[0] - bias).exp()
        mean = (pi[:, None] * p.mu[0]).sum(0)
        second = sum(
            pi[j] * (torch.outer(p.mu[0, j], p.mu[0, j]) + torch.tensor(
                [[sigma[j, 0] ** 2, p.rho[0, j] * sigma[j, 0] * sigma[j, 1]],
                 [p.rho[0, j] * sigma[j, 0] * sigma[j, 1], sigma[j, 1] ** 2]]))
            for j in range(M)
        )
        cov = second - torch.outer(mean, mean)
        torch.testing.assert_close(fast[:, :2].mean(0), mean, atol=0.03, rtol=0)
        torch.testing.assert_close(torch.cov(fast[:, :2].T), cov, atol=0.05, rtol=0.03)
        assert abs(float(fast[:, 2].mean()) - float(torch.sigmoid(p.eos_logit[0]))) < 0.01
