"""The mixture density head: log-likelihood against torch.distributions, sampling moments and bias."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, MixtureSameFamily, MultivariateNormal

from handwriting.models.mdn import (
    LOG_SIGMA_MAX,
    LOG_SIGMA_MIN,
    RHO_MAX,
    MDNHead,
    MixtureParams,
    mdn_nll,
    mixture_log_density,
    sample_mixture,
    soft_clamp,
)


def _random_params(shape, M, gen, scale=1.0):
    return MixtureParams(
        pi_logits=torch.randn((*shape, M), generator=gen) * 2 * scale,
        mu=torch.randn((*shape, M, 2), generator=gen),
        log_sigma=torch.randn((*shape, M, 2), generator=gen).clamp(-3, 2),
        rho=torch.tanh(torch.randn((*shape, M), generator=gen)) * 0.95,
        eos_logit=torch.randn(shape, generator=gen) * 3,
    )


def _reference_nll(p: MixtureParams, target: torch.Tensor) -> torch.Tensor:
    """Direct torch.distributions evaluation in float64."""
    d = lambda t: t.double()  # noqa: E731
    sigma = d(p.log_sigma).exp()
    rho = d(p.rho)
    s1, s2 = sigma[..., 0], sigma[..., 1]
    cov = torch.stack(
        [torch.stack([s1 * s1, rho * s1 * s2], -1), torch.stack([rho * s1 * s2, s2 * s2], -1)], -2
    )
    mix = MixtureSameFamily(Categorical(logits=d(p.pi_logits)), MultivariateNormal(d(p.mu), covariance_matrix=cov))
    target = target.double()
    return -mix.log_prob(target[..., :2]) - Bernoulli(logits=d(p.eos_logit)).log_prob(target[..., 2])


def _targets(shape, gen):
    t = torch.randn(*shape, 3, generator=gen)
    t[..., 2] = (torch.rand(*shape, generator=gen) < 0.3).float()
    return t


def test_nll_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    p = _random_params((4, 7), 5, gen)
    x = _targets((4, 7), gen)
    ours = mdn_nll(p, x)
    assert ours.dtype == torch.float32 and ours.shape == (4, 7)
    torch.testing.assert_close(ours.double(), _reference_nll(p, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["tiny_sigma", "rho_near_plus_one", "rho_near_minus_one", "huge_logits"])
def test_nll_matches_at_extreme_parameters(case):
    gen = torch.Generator().manual_seed(1)
    p = _random_params((3, 5), 4, gen)
    x = _targets((3, 5), gen)
    if case == "tiny_sigma":
        p.log_sigma = torch.full_like(p.log_sigma, LOG_SIGMA_MIN)
        # targets within a few (tiny) sigmas of the first component's mean, so the density is large
        p.pi_logits[..., 0] = 5.0
        x[..., :2] = p.mu[..., 0, :] + 3e-3 * torch.randn(3, 5, 2, generator=gen)
    elif case in ("rho_near_plus_one", "rho_near_minus_one"):
        sign = 1.0 if case == "rho_near_plus_one" else -1.0
        p.rho = torch.full_like(p.rho, sign * RHO_MAX)
        p.log_sigma = torch.zeros_like(p.log_sigma)
        # points on the ridge of the first component (x2 - mu2 = sign * (x1 - mu1)) plus a little noise
        p.pi_logits[..., 0] = 5.0
        t = torch.randn(3, 5, generator=gen)
        x[..., 0] = p.mu[..., 0, 0] + t
        x[..., 1] = p.mu[..., 0, 1] + sign * t + 1e-3 * torch.randn(3, 5, generator=gen)
    else:
        p.pi_logits = p.pi_logits * 500.0
        p.eos_logit = torch.sign(p.eos_logit) * 80.0
    ours = mdn_nll(p, x)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours.double(), _reference_nll(p, x), rtol=1e-5, atol=1e-5)


def test_nll_gradients_finite_at_extremes_and_mask_blocks_garbage():
    gen = torch.Generator().manual_seed(2)
    head = MDNHead(8, 3)
    h = torch.randn(2, 6, 8, generator=gen) * 1e4  # absurd activations: bounded transforms keep things finite
    h.requires_grad_(True)
    x = _targets((2, 6), gen)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 3:] = False
    x[1, 3:] = float("nan")  # padded garbage must not leak
    nll = mdn_nll(head(h), x, mask)
    assert torch.isfinite(nll).all() and (nll[1, 3:] == 0).all()
    nll.sum().backward()
    assert torch.isfinite(h.grad).all()
    assert all(torch.isfinite(q.grad).all() for q in head.parameters())


def test_head_shapes_and_bounds():
    head = MDNHead(16, 7)
    raw_in = torch.randn(5, 9, 16) * 1e3
    p = head(raw_in)
    assert p.pi_logits.shape == (5, 9, 7) and p.mu.shape == (5, 9, 7, 2)
    assert p.log_sigma.shape == (5, 9, 7, 2) and p.rho.shape == (5, 9, 7) and p.eos_logit.shape == (5, 9)
    assert p.rho.abs().max() <= RHO_MAX
    assert p.log_sigma.min() >= LOG_SIGMA_MIN and p.log_sigma.max() <= LOG_SIGMA_MAX
    assert head.out_features == 1 + 6 * 7
    # indexing and stacking helpers
    assert p[0].pi_logits.shape == (9, 7) and p[:, 3].mu.shape == (5, 7, 2)
    assert MixtureParams.stack([p[:, 0], p[:, 1]], 1).eos_logit.shape == (5, 2)


def test_soft_clamp_is_identity_inside_and_bounded_outside():
    x = torch.linspace(-3, 1, 50)
    torch.testing.assert_close(soft_clamp(x, -7.0, 4.0), x, atol=0.05, rtol=0)
    big = torch.tensor([-1e30, -50.0, 50.0, 1e30])
    y = soft_clamp(big, -7.0, 4.0)
    assert torch.isfinite(y).all() and y.min() >= -7.0 and y.max() <= 4.0


def test_density_integrates_to_one():
    gen = torch.Generator().manual_seed(3)
    p = _random_params((), 3, gen)
    p.log_sigma = p.log_sigma.clamp(-1.0, 0.0)
    g = torch.linspace(-9, 9, 601)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    dens = mixture_log_density(p, torch.stack([xx, yy], -1)).exp()
    area = (g[1] - g[0]) ** 2
    assert abs(float(dens.sum() * area) - 1.0) < 1e-3


def _one_step_params(N, gen):
    """The same 2-component mixture repeated in N rows."""
    p = MixtureParams(
        pi_logits=torch.tensor([0.3, -0.4]),
        mu=torch.tensor([[1.0, -2.0], [-1.5, 0.5]]),
        log_sigma=torch.log(torch.tensor([[0.5, 0.8], [0.3, 0.6]])),
        rho=torch.tensor([0.6, -0.4]),
        eos_logit=torch.tensor(-1.0),
    )
    return p, p.map(lambda t: t.expand(N, *t.shape).contiguous())


def test_unbiased_samples_match_mixture_moments():
    gen = torch.Generator().manual_seed(4)
    N = 200_000
    p, pN = _one_step_params(N, gen)
    s = sample_mixture(pN, 0.0, gen)
    assert s.shape == (N, 3)
    pi = torch.softmax(p.pi_logits, 0)
    mean = (pi[:, None] * p.mu).sum(0)
    sig = p.log_sigma.exp()
    cov = torch.zeros(2, 2)
    for j in range(2):
        s1, s2, r = sig[j, 0], sig[j, 1], p.rho[j]
        cj = torch.tensor([[s1 * s1, r * s1 * s2], [r * s1 * s2, s2 * s2]])
        d = (p.mu[j] - mean)[:, None]
        cov += pi[j] * (cj + d @ d.T)
    xy = s[:, :2]
    torch.testing.assert_close(xy.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(xy.T), cov, atol=0.03, rtol=0.02)
    assert abs(float(s[:, 2].mean()) - float(torch.sigmoid(torch.tensor(-1.0)))) < 0.005
    assert set(s[:, 2].unique().tolist()) <= {0.0, 1.0}


def test_large_bias_collapses_to_dominant_mean_and_is_deterministic_by_seed():
    gen = torch.Generator().manual_seed(5)
    p, pN = _one_step_params(2000, gen)
    s = sample_mixture(pN, 30.0, torch.Generator().manual_seed(0))
    dominant = p.mu[int(torch.argmax(p.pi_logits))]
    torch.testing.assert_close(s[:, :2], dominant.expand(2000, 2), atol=1e-6, rtol=0)
    a = sample_mixture(pN, 0.5, torch.Generator().manual_seed(7))
    b = sample_mixture(pN, 0.5, torch.Generator().manual_seed(7))
    c = sample_mixture(pN, 0.5, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # one bias per row
    per_row = sample_mixture(pN[:2], torch.tensor([0.0, 30.0]), torch.Generator().manual_seed(0))
    torch.testing.assert_close(per_row[1, :2], dominant, atol=1e-6, rtol=0)


def test_bias_shrinks_spread_monotonically():
    gen = torch.Generator().manual_seed(6)
    _, pN = _one_step_params(20_000, gen)
    spreads = [float(sample_mixture(pN, b, gen)[:, :2].std(0).sum()) for b in (0.0, 0.5, 2.0)]
    assert spreads[0] > spreads[1] > spreads[2]
    assert math.isfinite(spreads[-1])
