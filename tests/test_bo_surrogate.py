"""BO surrogate (sparse and exact GP, BoTorch's transforms, warm starts) and batch acquisition."""

from __future__ import annotations

import pytest
import torch

from botorch.models.transforms import Normalize, Standardize

from grammar_ae.bo.acquisition import AcquisitionConfig, candidate_set, propose
from grammar_ae.bo.surrogate import SparsePredictive, SurrogateConfig, data_bounds, fit_sparse_gp, fit_surrogate
from grammar_ae.bo.trust_region import local_points
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
    # minimisation: the GP models the negated score, so the incumbent is minus the smallest score
    assert surrogate.best_f == pytest.approx(float(-y.min()), rel=1e-12)
    mean, variance = surrogate.predict(z_test[:5])
    assert mean.shape == (5,) and bool((variance > 0).all())


def test_sparse_fit_is_seeded(data):
    z, y, z_test, _ = data
    config = SurrogateConfig(kind="sparse", inducing_points=20, min_steps=20, batch_size=100)
    first, second = (fit_surrogate(z, y, data_bounds(z), True, config, seed=3).predict(z_test)[0] for _ in range(2))
    assert torch.equal(first, second)


def test_sparse_predictive_equals_the_variational_posterior(data):
    z, y, _, _ = data
    x, targets = z.double(), y.double().unsqueeze(-1)
    normalize = Normalize(3, bounds=data_bounds(x))
    closed_form = fit_sparse_gp(x, targets, normalize, SurrogateConfig(kind="sparse", inducing_points=30, min_steps=30,
                                                                        batch_size=100), seed=0)
    assert isinstance(closed_form, SparsePredictive)
    svgp = closed_form.svgp
    points = torch.rand(6, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 4 - 2
    with torch.no_grad():
        for noise in (False, True):
            got = closed_form.posterior(points, observation_noise=noise)
            raw = svgp.posterior(normalize(points), observation_noise=noise)  # in standardised units
            mean = raw.mean * closed_form.standardize.stdvs + closed_form.standardize.means
            covariance = raw.mvn.covariance_matrix * closed_form.standardize.stdvs.squeeze() ** 2
            assert torch.allclose(got.mean, mean, atol=1e-10)
            assert torch.allclose(got.mvn.covariance_matrix, covariance, atol=1e-10)


def test_an_exact_fit_starts_from_the_last_fits_hyperparameters(data):
    z, y, z_test, y_test = data
    config = SurrogateConfig(fit_iterations=50)
    first = fit_surrogate(z, y, data_bounds(z), True, config, seed=0)
    warm = first.hyperparameters()
    assert set(warm) >= {"likelihood.noise_covar.raw_noise", "covar_module.raw_lengthscale"}
    one_step = fit_surrogate(z, y, data_bounds(z), True, SurrogateConfig(fit_iterations=1), seed=0, warm_start=warm)
    cold = fit_surrogate(z, y, data_bounds(z), True, SurrogateConfig(fit_iterations=1), seed=0)
    assert one_step.test_metrics(z_test, y_test)["rmse"] < cold.test_metrics(z_test, y_test)["rmse"]
    assert one_step.test_metrics(z_test, y_test)["rmse"] == pytest.approx(first.test_metrics(z_test, y_test)["rmse"], rel=0.05)


def test_local_points_are_the_nearest_in_units_of_the_spread():
    latents = torch.tensor([[0.0, 0.0], [0.0, 3.0], [2.0, 0.0], [5.0, 5.0]], dtype=torch.float64)
    scale = torch.tensor([1.0, 10.0], dtype=torch.float64)  # the second coordinate counts a tenth
    assert local_points(latents, torch.zeros(2, dtype=torch.float64), scale, 3).tolist() == [0, 1, 2]
    assert local_points(latents, torch.zeros(2, dtype=torch.float64), scale, 9).tolist() == [0, 1, 2, 3]


def test_trust_region_candidates_perturb_a_few_coordinates_of_the_centre():
    box = torch.stack([torch.full((60,), -1.0), torch.full((60,), 1.0)]).double()
    centre = torch.full((60,), 0.25, dtype=torch.float64)
    candidates = candidate_set(box, 500, seed=0, centre=centre)
    changed = (candidates != centre).sum(dim=1)
    assert changed.min() >= 1 and 15 < changed.float().mean() < 25  # about 20 of 60
    assert ((candidates >= -1) & (candidates <= 1)).all()
    filling = candidate_set(box, 500, seed=0)
    assert (filling != centre).all() and torch.equal(filling, candidate_set(box, 500, seed=0))


@pytest.fixture(scope="module")
def exact_surrogate(data):
    z, y, _, _ = data
    return fit_surrogate(z, y, data_bounds(z), True, SurrogateConfig(), seed=0)


@pytest.mark.parametrize("name", ["ei", "ucb", "thompson"])
def test_acquisition_returns_q_points_inside_bounds(exact_surrogate, name):
    surrogate = exact_surrogate
    bounds = torch.tensor([[-1.6, -2.0, -1.2], [0.4, 2.0, 1.6]], dtype=torch.float64)
    config = AcquisitionConfig(name=name, num_restarts=2, raw_samples=32, max_iterations=30, mc_samples=32)
    points = propose(surrogate.model, surrogate.best_f, bounds, q=4, config=config, seed=1)
    assert points.shape == (4, 3)
    assert bool(((points >= bounds[0]) & (points <= bounds[1])).all())
    again = propose(surrogate.model, surrogate.best_f, bounds, q=4, config=config, seed=1)
    assert torch.equal(points, again)


def test_bad_configs():
    with pytest.raises(ConfigError, match="surrogate 'dense'"):
        SurrogateConfig(kind="dense")
    with pytest.raises(ConfigError, match="acquisition 'pi'"):
        AcquisitionConfig(name="pi")
    with pytest.raises(ConfigError, match="fit_iterations must be at least 1"):
        SurrogateConfig(fit_iterations=0)
