"""Latent samplers: fitted moments, seed determinism, saving and loading, bad input."""

from __future__ import annotations

import pytest
import torch

from grammar_ae.errors import CheckpointError, ConfigError, DataError
from grammar_ae.objectives import (
    GaussianSampler,
    GMMPrior,
    GMMSampler,
    KernelDensitySampler,
    LatentSampler,
    StandardNormalSampler,
    TwoStageSampler,
    fit_sampler,
    load_sampler,
    sampler_from_dict,
    save_sampler,
)

MEAN = torch.tensor([1.0, -2.0, 0.5])
COV = torch.tensor([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])


def _correlated(n: int, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    return MEAN + noise @ torch.linalg.cholesky(COV).T


def _two_clusters(n: int = 600) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    left = torch.tensor([-4.0, 0.0]) + 0.5 * torch.randn(n // 2, 2, generator=generator)
    mixing = torch.tensor([[1.0, 0.0], [0.8, 0.6]])
    right = torch.tensor([4.0, 1.0]) + torch.randn(n // 2, 2, generator=generator) @ mixing.T
    return torch.cat([left, right])


def _draw(sampler: LatentSampler, n: int = 500, seed: int = 3) -> torch.Tensor:
    return sampler.sample(n, torch.Generator().manual_seed(seed))


def _assert_seeded(sampler: LatentSampler) -> None:
    assert torch.equal(_draw(sampler, seed=3), _draw(sampler, seed=3))
    assert not torch.equal(_draw(sampler, seed=3), _draw(sampler, seed=4))


def _assert_round_trips(sampler: LatentSampler, tmp_path) -> None:
    assert torch.equal(_draw(sampler_from_dict(sampler.to_dict())), _draw(sampler))
    save_sampler(tmp_path / "sampler.pt", sampler)
    loaded = load_sampler(tmp_path / "sampler.pt")
    assert type(loaded) is type(sampler)
    assert torch.equal(_draw(loaded), _draw(sampler))


def test_standard_normal_sampler(tmp_path):
    sampler = StandardNormalSampler(4)
    z = _draw(sampler, n=20000)
    assert z.shape == (20000, 4) and z.dtype == torch.float32
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(4), atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.eye(4), atol=0.04, rtol=0)
    _assert_seeded(sampler)
    _assert_round_trips(sampler, tmp_path)


def test_gaussian_sampler_fits_mean_and_full_covariance(tmp_path):
    latents = _correlated(4000)
    sampler = fit_sampler("gaussian", latents)
    assert isinstance(sampler, GaussianSampler)
    torch.testing.assert_close(sampler.mean, latents.double().mean(dim=0))
    torch.testing.assert_close(sampler.cov, torch.cov(latents.double().T))
    z = _draw(sampler, n=40000)
    torch.testing.assert_close(z.mean(dim=0), latents.mean(dim=0), atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.cov(latents.T), atol=0.05, rtol=0)
    _assert_seeded(sampler)
    _assert_round_trips(sampler, tmp_path)


def test_gaussian_sampler_handles_a_singular_covariance():
    latents = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))  # rank 1 covariance
    z = _draw(GaussianSampler.fit(latents))
    assert torch.isfinite(z).all()
    direction = latents[1] - latents[0]
    offsets = z - latents.mean(dim=0)
    residual = offsets - (offsets @ direction / (direction @ direction)).unsqueeze(1) * direction
    assert float(residual.abs().max()) < 1e-4  # samples stay on the line through the two codes


def test_gmm_sampler_recovers_two_clusters(tmp_path):
    latents = _two_clusters()
    sampler = fit_sampler("gmm", latents, components=2, max_iter=100, seed=0)
    assert isinstance(sampler, GMMSampler)
    order = sampler.means[:, 0].argsort()
    torch.testing.assert_close(sampler.weights[order], torch.tensor([0.5, 0.5], dtype=torch.float64), atol=0.01, rtol=0)
    torch.testing.assert_close(sampler.means[order], latents.double().reshape(2, 300, 2).mean(dim=1), atol=1e-3, rtol=0)
    left_cov = torch.cov(latents[:300].double().T, correction=0)  # EM's covariances are ML estimates
    torch.testing.assert_close(sampler.covariances[order[0]], left_cov, atol=1e-3, rtol=0)
    z = _draw(sampler, n=20000)
    torch.testing.assert_close(z.mean(dim=0), latents.mean(dim=0), atol=0.1, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.cov(latents.T), atol=0.3, rtol=0.03)
    assert 0.45 < float((z[:, 0] < 0).float().mean()) < 0.55
    _assert_seeded(sampler)
    _assert_round_trips(sampler, tmp_path)


def test_gmm_fit_is_deterministic_given_the_seed():
    latents = _two_clusters()
    a = GMMSampler.fit(latents, components=3, seed=7)
    b = GMMSampler.fit(latents, components=3, seed=7)
    for key in ("weights", "means", "covariances"):
        assert torch.equal(getattr(a, key), getattr(b, key))


def test_kde_sampler_draws_near_the_codes(tmp_path):
    latents = torch.stack([torch.arange(40.0), torch.zeros(40)], dim=1)  # codes 1 apart on a line
    sampler = fit_sampler("kde", latents, bandwidth=0.05)
    assert isinstance(sampler, KernelDensitySampler) and sampler.codes.dtype == torch.float16
    z = _draw(sampler, n=4000)
    nearest = torch.cdist(z.double(), latents.double()).min(dim=1)
    # each draw is a stored code plus N(0, 0.05^2 I): its offset from that code has per-axis std 0.05
    offsets = z.double() - latents.double()[nearest.indices]
    torch.testing.assert_close(offsets.std(dim=0), torch.full((2,), 0.05, dtype=torch.float64), atol=0.003, rtol=0)
    counts = torch.bincount(nearest.indices, minlength=40)
    assert int(counts.min()) > 60 and int(counts.max()) < 140  # codes drawn uniformly (100 each expected)
    _assert_seeded(sampler)
    _assert_round_trips(sampler, tmp_path)


def test_gmm_prior_is_a_saveable_sampler(tmp_path):
    prior = GMMPrior.one_hot(3, 4, std=0.5, scale=2.0)
    assert isinstance(prior, LatentSampler)
    _assert_seeded(prior)
    _assert_round_trips(prior, tmp_path)


def _near_a_line(n: int = 1000) -> torch.Tensor:
    """Codes on a 1-D manifold in 3-D: the case the two-stage VAE is made for."""
    generator = torch.Generator().manual_seed(0)
    t = torch.randn(n, 1, generator=generator)
    noise = 0.1 * torch.randn(n, 2, generator=generator)
    return torch.cat([t + 1.0, 2.0 * t - 2.0 + noise[:, :1], 0.5 - t + noise[:, 1:]], dim=1)


def test_two_stage_sampler_learns_the_code_distribution(tmp_path):
    latents = _near_a_line()
    rng_before = torch.get_rng_state()
    sampler = fit_sampler("two-stage", latents, epochs=20, hidden=32, batch_size=50, lr=3e-3, seed=0)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is untouched
    assert isinstance(sampler, TwoStageSampler)
    assert sampler.history[-1] < sampler.history[0] - 1.0
    assert sampler.log_gamma < -0.5  # the stage-2 decoder explains the codes better than noise
    z = _draw(sampler, n=5000)
    assert z.shape == (5000, 3)
    torch.testing.assert_close(z.mean(dim=0), latents.mean(dim=0), atol=0.2, rtol=0)
    torch.testing.assert_close(z.std(dim=0), latents.std(dim=0), atol=0, rtol=0.25)
    correlation = torch.corrcoef(z.T)  # true: +0.99 / -0.99; a collapsed stage 2 would give about 0
    assert float(correlation[0, 1]) > 0.5 and float(correlation[0, 2]) < -0.5
    _assert_seeded(sampler)
    _assert_round_trips(sampler, tmp_path)


def test_two_stage_sampler_keeps_the_variance_its_decoder_leaves_to_noise():
    latents = 3.0 * torch.randn(1000, 2, generator=torch.Generator().manual_seed(2))  # nothing to learn
    sampler = TwoStageSampler.fit(latents, epochs=3, hidden=16, seed=0)
    z = _draw(sampler, n=5000)
    torch.testing.assert_close(z.std(dim=0), torch.full((2,), 3.0), atol=0, rtol=0.15)


def test_two_stage_fit_is_deterministic_given_the_seed():
    a, b, c = (TwoStageSampler.fit(_near_a_line(200), epochs=2, hidden=16, seed=seed) for seed in (5, 5, 6))
    assert torch.equal(_draw(a), _draw(b))
    assert not torch.equal(_draw(a), _draw(c))


@pytest.mark.parametrize(
    ("kind", "latents", "options", "error", "message"),
    [
        ("parzen", torch.zeros(5, 2), {}, ConfigError, "unknown"),
        ("kde", torch.zeros(5, 2), {"bandwidth": 0.0}, ConfigError, "bandwidth"),
        ("kde", torch.zeros(5, 2), {"bandwidth": float("nan")}, ConfigError, "bandwidth"),
        ("kde", torch.zeros(0, 2), {}, DataError, "at least 1"),
        ("gmm", torch.zeros(5, 2), {"n_components": 2}, ConfigError, "n_components"),
        ("gaussian", torch.zeros(5), {}, DataError, "2-D"),
        ("gaussian", torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), {}, DataError, "NaN"),
        ("gmm", torch.randn(5, 2), {"components": 10}, DataError, "at least 10"),
        ("gmm", torch.randn(5, 2), {"components": 0}, ConfigError, "components"),
        ("two-stage", torch.randn(5, 2), {"epochs": 0}, ConfigError, "epochs"),
    ],
)
def test_bad_sampler_input(kind, latents, options, error, message):
    with pytest.raises(error, match=message):
        fit_sampler(kind, latents, **options)


def test_bad_sampler_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_sampler(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_sampler(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="unknown kind"):
        sampler_from_dict({"kind": "mystery"})
    with pytest.raises(ConfigError, match=">= 1"):
        StandardNormalSampler(2).sample(0)
