"""BO surrogate (sparse and exact GP) and batch acquisition."""

from __future__ import annotations

import pytest
import torch

from grammar_ae.bo.acquisition import AcquisitionConfig, propose
from grammar_ae.bo.surrogate import SparsePredictive, SurrogateConfig, data_bounds, fit_sparse_gp, fit_surrogate
from grammar_ae.errors import ConfigError


def smooth(z: torch.Tensor) -> torch.Tensor:
    return torch.sin(2 * z[:, 0]) + 0.5 * z[:, 1] ** 2 - z[:, 2]


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(0)
    z = torch.rand(300, 3, generator=generator) * 4 - 2
    z_test = torch.rand(100, 3, generator=generator) * 4 - 2
    return z, smooth(z), z_test, smooth(z_test)


@pytest.mark.parametrize("kind", ["exact", "sparse"])
def test_surrogate_predicts_smooth_function(data, kind):
    z, y, z_test, y_test = data
    config = SurrogateConfig(kind=kind, inducing_points=60, min_steps=150, batch_size=150)
    surrogate = fit_surrogate(z, y, data_bounds(z), maximize=False, config=config, seed=0)
    metrics = surrogate.test_metrics(z_test, y_test)
    assert metrics["rmse"] < 0.2 * float(y_test.std())
    assert metrics["log_likelihood"] > -1.0
    # minimisation: internally negated, so the incumbent is the smallest score, standardised
    assert surrogate.best_f == pytest.approx(float((-y.min() - (-y).mean()) / (-y).std()), rel=1e-6)
    mean, variance = surrogate.predict(z_test[:5])
    assert mean.shape == (5,) and bool((variance > 0).all())


def test_sparse_fit_is_seeded(data):
    z, y, z_test, _ = data
    config = SurrogateConfig(inducing_points=20, min_steps=20, batch_size=100)
    first, second = (fit_surrogate(z, y, data_bounds(z), True, config, seed=3).predict(z_test)[0] for _ in range(2))
    assert torch.equal(first, second)


def test_sparse_predictive_equals_the_variational_posterior(data):
    z, y, _, _ = data
    x = (z + 2) / 4
    svgp = fit_sparse_gp(x.double(), ((y - y.mean()) / y.std()).double().unsqueeze(-1),
                         SurrogateConfig(inducing_points=30, min_steps=30, batch_size=100), seed=0)
    closed_form = SparsePredictive(svgp)
    points = torch.rand(6, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for noise in (False, True):
            expected, got = svgp.posterior(points, observation_noise=noise), closed_form.posterior(points, observation_noise=noise)
            assert torch.allclose(got.mean, expected.mean, atol=1e-10)
            assert torch.allclose(got.mvn.covariance_matrix, expected.mvn.covariance_matrix, atol=1e-10)


@pytest.fixture(scope="module")
def exact_surrogate(data):
    z, y, _, _ = data
    return fit_surrogate(z, y, data_bounds(z), True, SurrogateConfig(kind="exact"), seed=0)


@pytest.mark.parametrize("name", ["ei", "ucb", "thompson"])
def test_acquisition_returns_q_points_inside_bounds(exact_surrogate, name):
    surrogate = exact_surrogate
    bounds = torch.tensor([[0.1, 0.0, 0.2], [0.6, 1.0, 0.9]], dtype=torch.float64)
    config = AcquisitionConfig(name=name, num_restarts=2, raw_samples=32, max_iterations=30, mc_samples=32)
    points = propose(surrogate.model, surrogate.best_f, bounds, q=4, config=config, seed=1)
    assert points.shape == (4, 3)
    assert bool(((points >= bounds[0]) & (points <= bounds[1])).all())
    again = propose(surrogate.model, surrogate.best_f, bounds, q=4, config=config, seed=1)
    assert torch.equal(points, again)


def test_bad_configs():
    with pytest.raises(ConfigError, match="surrogate 'dense'"):
        SurrogateConfig(kind="dense").validate()
    with pytest.raises(ConfigError, match="acquisition 'pi'"):
        AcquisitionConfig(name="pi").validate()
