"""Each objective of grammar_ae.objectives against a closed form or an independent computation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from grammar_ae.errors import ConfigError, GrammarAEError, TrainingError
from grammar_ae.objectives import (
    OBJECTIVES,
    EncoderOutput,
    GMMPrior,
    ReconstructionTerms,
    StandardNormalSampler,
    build_objective,
    config_of,
)
from grammar_ae.objectives.ar_elbo import ar_nll
from grammar_ae.objectives.gmm_prior import cv_loss, ks_loss
from grammar_ae.objectives.terms import binary_cross_entropy, gradient_penalty
from grammar_ae.objectives.wae import imq_mmd

DTYPE = torch.float64


def _scalar(value) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _close(a, b, tol=1e-10):
    assert _scalar(a) == pytest.approx(_scalar(b), rel=tol, abs=tol)


def _rec(value: float = 0.5, squared_error: torch.Tensor | None = None) -> ReconstructionTerms:
    return ReconstructionTerms(loss=torch.tensor(value, dtype=DTYPE), squared_error=squared_error)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


# --------------------------------------------------------------------------- VAE family


def test_vae_kl_matches_torch_distributions(gen):
    mu = torch.randn(6, 4, generator=gen, dtype=DTYPE)
    logvar = torch.randn(6, 4, generator=gen, dtype=DTYPE)
    objective = build_objective("vae", kl_weight=0.3)
    terms = objective(EncoderOutput(mu, logvar), mu, mu, _rec(0.5), nn.Identity())
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(dim=1).mean()
    _close(terms["kl"], expected)
    _close(terms["loss"], 0.5 + 0.3 * expected)
    _close(terms["rec"], 0.5)


def test_vae_latent_is_reparameterised_in_training_and_mean_in_eval(gen):
    mu = torch.randn(5, 3, generator=gen)
    logvar = torch.randn(5, 3, generator=gen)
    objective = build_objective("vae", encoder_noise_std=0.01)
    torch.manual_seed(7)
    z = objective.latent(EncoderOutput(mu, logvar))
    torch.manual_seed(7)
    eps = torch.randn_like(mu)
    torch.testing.assert_close(z, mu + 0.01 * (0.5 * logvar).exp() * eps)
    objective.eval()
    assert torch.equal(objective.latent(EncoderOutput(mu, logvar)), mu)


def test_vae_without_logvar_is_a_clear_error():
    objective = build_objective("vae")
    mu = torch.zeros(2, 3)
    with pytest.raises(ConfigError, match="logvar"):
        objective.latent(EncoderOutput(mu))
    with pytest.raises(ConfigError, match="stochastic encoder"):
        objective(EncoderOutput(mu), mu, mu, _rec(), nn.Identity())


def test_cvvae_kl_is_half_squared_mean_norm_and_noise_has_fixed_std(gen):
    objective = build_objective("cvvae", kl_weight=2.0)
    mu = torch.randn(7, 3, generator=gen, dtype=DTYPE)
    terms = objective(EncoderOutput(mu), mu, mu, _rec(0.1), nn.Identity())
    expected = sum(0.5 * float(row @ row) for row in mu) / 7
    _close(terms["kl"], expected)
    _close(terms["loss"], 0.1 + 2.0 * expected)
    big = torch.full((20000, 2), 3.0)
    torch.manual_seed(0)
    noise = objective.latent(EncoderOutput(big)) - big
    assert float(noise.std()) == pytest.approx(0.7, rel=0.02)
    assert abs(float(noise.mean())) < 0.02
    objective.eval()
    assert torch.equal(objective.latent(EncoderOutput(big)), big)


# --------------------------------------------------------------------------- RAE family


def test_rae_z_term_is_beta_times_half_squared_norm(gen):
    objective = build_objective("rae", beta=0.25)
    z = torch.randn(4, 3, generator=gen, dtype=DTYPE)
    terms = objective(EncoderOutput(z), z, z, _rec(1.0), nn.Identity())
    expected = float((z**2).sum()) / 2 / 4
    _close(terms["z_norm"], expected)
    _close(terms["loss"], 1.0 + 0.25 * expected)
    assert set(terms) == {"loss", "rec", "z_norm"}


def test_plain_ae_is_just_the_reconstruction_loss():
    objective = build_objective("ae")
    z = torch.ones(3, 2)
    terms = objective(EncoderOutput(z), z, z, _rec(0.7), nn.Identity())
    assert set(terms) == {"loss", "rec"}
    _close(terms["loss"], 0.7)
    assert objective.prior_sampler(2) is None


def test_l2_is_the_sum_of_squared_decoder_parameters(gen):
    decoder = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    objective = build_objective("ae-l2", l2_weight=0.1)
    z = torch.randn(4, 3, generator=gen, dtype=DTYPE)
    terms = objective(EncoderOutput(z), z, decoder(z), _rec(0.0), decoder)
    by_hand = sum(float((p.detach() ** 2).sum()) for p in decoder.parameters())
    _close(terms["l2"], by_hand)
    _close(terms["loss"], 0.1 * by_hand)
    assert "z_norm" not in terms


def test_gradient_penalty_of_a_linear_decoder_is_analytic(gen):
    decoder = nn.Linear(3, 4).double()
    z = torch.randn(5, 3, generator=gen, dtype=DTYPE, requires_grad=True)
    penalty = gradient_penalty(decoder(z), z)
    column_sums = decoder.weight.detach().sum(dim=0)  # W^T 1
    _close(penalty, column_sums @ column_sums)
    penalty.backward()  # create_graph: the penalty trains the decoder; d/dW ||W^T 1||^2 = 2 * 1 (W^T 1)^T
    torch.testing.assert_close(decoder.weight.grad, 2.0 * column_sums.expand(4, 3))


def test_gradient_penalty_matches_jacrev_for_a_nonlinear_decoder(gen):
    torch.manual_seed(3)
    decoder = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4)).double()
    z = torch.randn(5, 3, generator=gen, dtype=DTYPE, requires_grad=True)
    objective = build_objective("rae-gp", beta=0.0, gp_weight=2.0)
    assert objective.needs_latent_grad and not build_objective("rae").needs_latent_grad
    terms = objective(EncoderOutput(z), z, decoder(z), _rec(0.0), decoder)
    jacobians = torch.func.vmap(torch.func.jacrev(decoder))(z.detach())  # (B, D, d)
    expected = jacobians.sum(dim=1).pow(2).sum(dim=1).mean()
    _close(terms["gp"], expected, tol=1e-9)
    _close(terms["loss"], 2.0 * expected, tol=1e-9)


def test_gradient_penalty_is_also_computed_under_no_grad(gen):
    decoder = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4)).double()
    z = torch.randn(5, 3, generator=gen, dtype=DTYPE)
    objective = build_objective("rae-gp", gp_weight=1.0)
    with_graph = objective(EncoderOutput(z), z.requires_grad_(), decoder(z), _rec(0.0), decoder)
    with torch.no_grad():  # a validation pass
        without = objective(EncoderOutput(z), z, decoder(z), _rec(0.0), decoder)
    _close(without["gp"], with_graph["gp"], tol=1e-12)
    assert not without["loss"].requires_grad


def test_decoding_context_disables_cudnn_only_for_the_gradient_penalty():
    before = torch.backends.cudnn.enabled
    with build_objective("rae-gp", gp_weight=1e-4).decoding_context():
        assert torch.backends.cudnn.enabled is False
    with build_objective("rae").decoding_context():
        assert torch.backends.cudnn.enabled is before
    assert torch.backends.cudnn.enabled is before


def test_gradient_penalty_outside_autograd_is_a_clear_error():
    decoder = nn.Linear(2, 2)
    z = torch.randn(3, 2)
    with torch.no_grad():
        decoded = decoder(z)
    with pytest.raises(TrainingError, match="enable_grad"):
        gradient_penalty(decoded, z)


def _top_singular_value(weight: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2))


def test_spectral_norm_bounds_every_decoder_matrix_by_one():
    torch.manual_seed(0)
    decoder = nn.Sequential(
        nn.Linear(4, 16), nn.ReLU(), nn.Unflatten(1, (4, 4)),
        nn.ConvTranspose1d(4, 3, 3), nn.ReLU(), nn.Conv1d(3, 2, 3),
    )
    gru = nn.GRU(2, 5, num_layers=2, batch_first=True)
    with torch.no_grad():
        for module in (decoder, gru):
            for p in module.parameters():
                p.mul_(10.0)
    assert _top_singular_value(decoder[0].weight) > 5
    objective = build_objective("rae-sn", spectral_norm=True)
    assert objective.prepare_decoder(decoder) is decoder
    assert objective.covered_by_spectral_norm == ["0.weight", "3.weight", "5.weight"]
    objective.prepare_decoder(gru)
    assert objective.covered_by_spectral_norm == ["weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"]
    z = torch.randn(8, 4)
    for _ in range(30):  # one power iteration per training forward
        decoder(z)
        gru(torch.randn(2, 3, 2))
    for weight in (decoder[0].weight, decoder[5].weight, gru.weight_ih_l0, gru.weight_hh_l1):
        assert _top_singular_value(weight) == pytest.approx(1.0, abs=1e-3)
    # transposed convolutions are normalised along their output-channel dimension
    assert _top_singular_value(decoder[3].weight.transpose(0, 1)) == pytest.approx(1.0, abs=1e-3)


def test_spectral_norm_on_a_decoder_without_weight_layers_is_an_error():
    with pytest.raises(TrainingError, match="no Linear"):
        build_objective("rae-sn", spectral_norm=True).prepare_decoder(nn.Sequential(nn.Tanh()))


# --------------------------------------------------------------------------- WAE


def test_mmd_matches_the_unbiased_estimate_by_hand(gen):
    x = torch.randn(3, 2, generator=gen, dtype=DTYPE)
    y = torch.randn(4, 2, generator=gen, dtype=DTYPE)
    scales = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

    def k(a, b):
        return sum((2 * 2 * s) / (2 * 2 * s + float(((a - b) ** 2).sum())) for s in scales)

    xx = sum(k(x[i], x[j]) for i in range(3) for j in range(3) if i != j) / 6
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(3) for j in range(4)) / 12
    _close(imq_mmd(x, y), xx + yy - 2 * xy, tol=1e-9)


def test_mmd_is_near_zero_for_prior_samples_and_large_for_shifted_ones(gen):
    prior_a = torch.randn(400, 4, generator=gen)
    prior_b = torch.randn(400, 4, generator=gen)
    same = abs(float(imq_mmd(prior_a, prior_b)))
    shifted = float(imq_mmd(prior_a + 1.0, prior_b))
    assert same < 0.01
    assert shifted > 20 * same and shifted > 0.1


def test_wae_objective_adds_weighted_mmd_and_is_differentiable(gen):
    objective = build_objective("wae")
    assert objective.config.mmd_weight == 3e-2
    z = (torch.randn(50, 3, generator=gen) + 2.0).requires_grad_()
    terms = objective(EncoderOutput(z), z, z, _rec(1.0), nn.Identity())
    _close(terms["loss"], 1.0 + 3e-2 * terms["mmd"], tol=1e-6)
    terms["loss"].backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


# --------------------------------------------------------------------------- GMM prior, KS, CV


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_gmm_prior_marginal_cdf_and_covariance_closed_forms():
    prior = GMMPrior.one_hot(3, 5, std=0.5)
    t = torch.tensor([[0.3, -0.2, 1.1, 0.0, 2.0]])
    cdf = prior.cdf_marginal(t)
    for d in range(5):
        means = [1.0 if k == d else 0.0 for k in range(3)]
        expected = sum(_phi((float(t[0, d]) - m) / 0.5) for m in means) / 3
        _close(cdf[0, d], expected, tol=1e-6)
    cov = prior.covariance()
    expected = 0.25 * torch.eye(5)
    expected[:3, :3] += torch.eye(3) / 3 - 1 / 9  # (1/K) sum_k (e_k - mean)(e_k - mean)^T
    torch.testing.assert_close(cov, expected)


def test_gmm_prior_sampling_is_seeded_and_matches_its_moments():
    prior = GMMPrior.one_hot(4, 6, std=0.8, scale=2.0)
    a = prior.sample(40000, torch.Generator().manual_seed(5))
    b = prior.sample(40000, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    torch.testing.assert_close(a.mean(dim=0), prior.means.mean(dim=0), atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(a.T), prior.covariance(), atol=0.04, rtol=0)


def test_component_of_recovers_the_drawing_component():
    prior = GMMPrior.one_hot(5, 5, std=1.0, scale=10.0)
    z = prior.means[torch.tensor([3, 0, 4, 4, 1])] + 0.1 * torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    assert prior.component_of(z).tolist() == [3, 0, 4, 4, 1]


def test_ks_loss_by_hand_in_one_dimension():
    prior = GMMPrior(torch.zeros(1, 1), std=1.0)
    z = torch.tensor([[0.5], [-1.0], [2.0]], requires_grad=True)
    expected = ((1 / 3 - _phi(-1.0)) ** 2 + (2 / 3 - _phi(0.5)) ** 2 + (1 - _phi(2.0)) ** 2) / 3
    loss = ks_loss(z, prior)
    _close(loss, expected, tol=1e-6)
    loss.backward()  # sorting keeps gradients to every code
    assert (z.grad != 0).all()


def test_cv_loss_by_hand():
    prior = GMMPrior(torch.zeros(1, 2), std=1.0)
    z = torch.tensor([[1.0, 0.0], [-1.0, 2.0], [0.0, 1.0]])
    batch_cov = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # unbiased (N - 1)
    _close(cv_loss(z, prior), ((batch_cov - torch.eye(2)) ** 2).mean(), tol=1e-6)


def test_gmm_calibration_sets_inverse_expected_losses_and_detects_shifted_batches():
    objective = build_objective("gmm", components=4)
    with pytest.raises(TrainingError, match="calibrate"):
        z = torch.zeros(20, 6)
        objective(EncoderOutput(z), z, z, _rec(), nn.Identity())
    stats = objective.calibrate(batch_size=50, latent_dim=6, n_batches=40, seed=0)
    assert objective.config.latent_dim == 6 and objective.calibrated
    _close(objective.ks_weight, 1 / stats["expected_ks"], tol=1e-6)
    _close(objective.cv_weight, 1 / stats["expected_cv"], tol=1e-6)
    assert objective.calibrate(50, 6, n_batches=40, seed=0) == stats  # seeded

    prior = objective.prior_sampler(6)
    generator = torch.Generator().manual_seed(99)
    fresh = [prior.sample(50, generator) for _ in range(40)]
    mean_ks = sum(float(ks_loss(z, prior)) for z in fresh) / 40
    mean_cv = sum(float(cv_loss(z, prior)) for z in fresh) / 40
    assert mean_ks == pytest.approx(stats["expected_ks"], rel=0.25)
    assert mean_cv == pytest.approx(stats["expected_cv"], rel=0.25)

    z = fresh[0]
    terms = objective(EncoderOutput(z), z, z, _rec(2.0), nn.Identity())
    assert float(terms["ks"]) < 4 * stats["expected_ks"]
    assert float(terms["cv"]) < 4 * stats["expected_cv"]
    _close(terms["loss"], 2.0 + objective.ks_weight * terms["ks"] + objective.cv_weight * terms["cv"], tol=1e-6)
    shifted = objective(EncoderOutput(z + 2.0), z + 2.0, z, _rec(2.0), nn.Identity())
    assert float(shifted["ks"]) > 20 * stats["expected_ks"]
    squeezed = objective(EncoderOutput(0.1 * z), 0.1 * z, z, _rec(2.0), nn.Identity())
    assert float(squeezed["cv"]) > 5 * stats["expected_cv"]


def test_gmm_weights_are_checkpointed_and_config_weights_are_kept():
    objective = build_objective("gmm", components=3, latent_dim=4, cv_weight=0.5)
    objective.calibrate(batch_size=20, latent_dim=4, n_batches=5)
    assert float(objective.cv_weight) == 0.5
    rebuilt = build_objective(**config_of(objective))
    assert math.isnan(float(rebuilt.ks_weight)) and float(rebuilt.cv_weight) == 0.5  # the config keeps fixed weights only
    assert not rebuilt.calibrated
    rebuilt.load_state_dict(objective.state_dict())
    assert rebuilt.calibrated
    assert float(rebuilt.ks_weight) == float(objective.ks_weight)
    torch.testing.assert_close(rebuilt.prior.means, torch.eye(3, 4))


def test_gmm_state_dict_loads_into_an_objective_built_before_its_latent_dim_was_known():
    calibrated = build_objective("gmm", components=3)
    calibrated.calibrate(batch_size=20, latent_dim=5, n_batches=5)
    fresh = nn.ModuleDict({"objective": build_objective("gmm", components=3)})
    fresh.load_state_dict(nn.ModuleDict({"objective": calibrated}).state_dict())
    loaded = fresh["objective"]
    assert loaded.calibrated and loaded.config.latent_dim == 5
    assert float(loaded.ks_weight) == float(calibrated.ks_weight)
    torch.testing.assert_close(loaded.prior_sampler(5).means, torch.eye(3, 5))


@pytest.mark.parametrize(
    ("overrides", "call", "message"),
    [
        ({"components": 12, "latent_dim": 10}, None, "must not exceed"),
        ({"components": 10}, (10, 10), "batch size"),
        ({"components": 3, "latent_dim": 5}, (100, 6), "does not match"),
        ({"std": 0.0}, None, "std"),
    ],
)
def test_gmm_bad_configurations_raise(overrides, call, message):
    with pytest.raises(ConfigError, match=message):
        objective = build_objective("gmm", **overrides)
        if call:
            objective.calibrate(*call, n_batches=1)


# --------------------------------------------------------------------------- AR-ELBO and two-stage VAE

SQUARED = torch.tensor([[1.0, 4.0], [9.0, 16.0]], dtype=DTYPE)  # B = 2, D = 2


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("iso-i", math.log(((1 + 4) + (9 + 16)) / 2 / 2)),
        ("iso-d", (math.log(5 / 2 + 1e-6) + math.log(25 / 2 + 1e-6)) / 2),
        ("diag-i", 0.5 * (math.log(5 + 1e-6) + math.log(10 + 1e-6))),
        ("diag-d", 0.5 * (math.log(1 + 1e-6) + math.log(4 + 1e-6) + math.log(9 + 1e-6) + math.log(16 + 1e-6)) / 2),
    ],
)
def test_ar_elbo_variants_against_hand_numbers(variant, expected, gen):
    _close(ar_nll(SQUARED, variant), expected)
    objective = build_objective("ar-elbo", variant=variant, kl_weight=0.5)
    assert objective.stochastic_encoder
    mu, logvar = torch.randn(2, 3, generator=gen, dtype=DTYPE), torch.zeros(2, 3, dtype=DTYPE)
    terms = objective(EncoderOutput(mu, logvar), mu, mu, _rec(9.0, SQUARED), nn.Identity())
    _close(terms["nll"], expected)
    _close(terms["loss"], expected + 0.5 * float((mu**2).sum(dim=1).mean()) / 2)
    _close(terms["rec"], 9.0)


# maximum-likelihood variance of each parameterisation for SQUARED (B = 2, D = 2)
ML_VARIANCES = {
    "iso-i": SQUARED.mean().reshape(1),
    "iso-d": SQUARED.mean(dim=1, keepdim=True),
    "diag-i": SQUARED.mean(dim=0),
    "diag-d": SQUARED,
}


@pytest.mark.parametrize("variant", sorted(ML_VARIANCES))
def test_trainable_sigma_at_its_optimal_variance_is_the_ar_elbo_plus_d_over_2(variant, gen):
    """The AR-ELBO substitutes the maximum-likelihood Sigma_x that the trainable version learns."""
    objective = build_objective("trainable-sigma", variant=variant, kl_weight=0.5, latent_dim=3, data_dim=2, hidden=4).double()
    optimum = ML_VARIANCES[variant]
    eps = 0.0 if variant == "iso-i" else 1e-6
    with torch.no_grad():
        if variant.endswith("-d"):  # a head that outputs the optimum: zero weights, bias = its log, one sample at a time
            objective.head[-1].weight.zero_()
    mu, logvar = torch.randn(2, 3, generator=gen, dtype=DTYPE), torch.zeros(2, 3, dtype=DTYPE)
    for rows in ([0], [1]) if variant.endswith("-d") else ([0, 1],):
        with torch.no_grad():
            parameter = objective.head[-1].bias if variant.endswith("-d") else objective.log_variance
            parameter.copy_((optimum[rows[0]] if variant.endswith("-d") else optimum).log())
        enc = EncoderOutput(mu[rows], logvar[rows])
        terms = objective(enc, mu[rows], mu[rows], _rec(0.0, SQUARED[rows]), nn.Identity())
        kl_rows = 0.5 * float((mu[rows] ** 2).sum(dim=1).mean())
        _close(terms["nll"], ar_nll(SQUARED[rows], variant) + 2 / 2, tol=1e-6)
        _close(terms["loss"], terms["nll"] + 0.5 * kl_rows)
        _close(terms["sigma_x2"], (optimum[rows] if variant.endswith("-d") else optimum).mean() + eps)


@pytest.mark.parametrize(("variant", "shape"), [("iso-i", (1,)), ("iso-d", (5, 1)), ("diag-i", (7,)), ("diag-d", (5, 7))])
def test_trainable_sigma_shapes_start_and_gradients(variant, shape, gen):
    objective = build_objective("trainable-sigma", variant=variant, init_log_variance=-1.0, latent_dim=3, data_dim=7)
    z = torch.randn(5, 3, generator=gen, requires_grad=True)
    variance = objective.variance(z)
    assert variance.shape == shape
    expected = math.exp(-1.0) + (0.0 if variant == "iso-i" else 1e-6)
    assert torch.allclose(variance, torch.full(shape, expected))
    squared = torch.rand(5, 7, generator=gen)
    terms = objective(EncoderOutput(z, torch.zeros(5, 3)), z, z, _rec(0.0, squared), nn.Identity())
    terms["loss"].backward()
    trained = objective.head[-1].bias if variant.endswith("-d") else objective.log_variance
    assert trained.grad is not None and trained.grad.abs().sum() > 0


def test_binary_cross_entropy_equals_torch_on_a_hand_case():
    probabilities = torch.tensor([[0.2, 0.9, 0.5, 1.0]], dtype=DTYPE)
    target = torch.tensor([[0.0, 1.0, 0.25, 0.0]], dtype=DTYPE)
    by_hand = [-math.log(0.8), -math.log(0.9), -(0.25 * math.log(0.5) + 0.75 * math.log(0.5)), 100.0]
    ours = binary_cross_entropy(probabilities, target)
    assert ours.flatten().tolist() == pytest.approx(by_hand, rel=1e-12)
    theirs = nn.functional.binary_cross_entropy(probabilities, target, reduction="none")
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=0)


def test_vae_with_no_encoder_noise_decodes_the_mean(gen):
    objective = build_objective("vae", encoder_noise_std=0.0)
    mu, logvar = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    assert torch.equal(objective.train().latent(EncoderOutput(mu, logvar)), mu)


def test_ar_elbo_errors():
    with pytest.raises(ConfigError, match="variant 'iso-x'"):
        build_objective("ar-elbo", variant="iso-x")
    objective = build_objective("ar-elbo")
    mu = torch.zeros(2, 3)
    with pytest.raises(ConfigError, match="squared errors"):
        objective(EncoderOutput(mu, mu), mu, mu, _rec(), nn.Identity())


def test_two_stage_stage_one_loss_and_learned_gamma(gen):
    objective = build_objective("2svae").double()
    with torch.no_grad():
        objective.log_gamma.fill_(math.log(2.0))
    mu, logvar = torch.randn(2, 3, generator=gen, dtype=DTYPE), torch.randn(2, 3, generator=gen, dtype=DTYPE)
    terms = objective(EncoderOutput(mu, logvar), mu, mu, _rec(0.0, SQUARED), nn.Identity())
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(dim=1).mean()
    _close(terms["nll"], 15 / (2 * 2) + (2 / 2) * math.log(2))
    _close(terms["loss"], terms["nll"] + kl)
    _close(terms["gamma"], 2.0)
    terms["loss"].backward()
    _close(objective.log_gamma.grad, -15 / (2 * 2) + 2 / 2)  # d/dlog(gamma); zero at gamma = 7.5
    assert [name for name, _ in objective.named_parameters()] == ["log_gamma"]


# --------------------------------------------------------------------------- registry and the interface


def test_objectives_are_built_from_their_typed_configs():
    assert config_of(build_objective("rae-sn")) == {
        "name": "rae-sn", "beta": 0.0, "l2_weight": 0.0, "gp_weight": 0.0, "spectral_norm": False,
    }
    assert config_of(build_objective("cvvae"))["noise_std"] == 0.7
    assert config_of(build_objective("rae-sn", beta=0.5))["beta"] == 0.5
    with pytest.raises(ConfigError, match="objective 'rae' has no setting 'gamma'; its settings are beta"):
        build_objective("rae", gamma=1.0)
    with pytest.raises(ConfigError, match="objective 'vqvae' is unknown"):
        build_objective("vqvae")


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_config_round_trips(name):
    objective = build_objective(name)
    rebuilt = build_objective(**config_of(objective))
    assert type(rebuilt) is type(objective) and config_of(rebuilt) == config_of(objective)


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("nope", {}, "unknown"),
        ("vae", {"beta": 1.0}, "no setting 'beta'"),
        ("rae", {"beta": -1.0}, "beta must be"),
        ("rae", {"gp_weight": float("nan")}, "gp_weight"),
        ("rae", {"spectral_norm": "yes"}, "spectral_norm"),
        ("vae", {"encoder_noise_std": -0.1}, "encoder_noise_std"),
        ("trainable-sigma", {"variant": "iso-x"}, "variant 'iso-x'"),
        ("trainable-sigma", {"init_log_variance": float("nan")}, "init_log_variance"),
        ("trainable-sigma", {"variant": "diag-d", "data_dim": 4}, "latent_dim, hidden and data_dim"),
        ("trainable-sigma", {"variant": "diag-i"}, "diag-i: data_dim must be >= 1"),
        ("cvvae", {"noise_std": -0.7}, "noise_std"),
        ("wae", {"mmd_weight": "big"}, "mmd_weight"),
        ("2svae", {"init_log_gamma": float("inf")}, "init_log_gamma"),
    ],
)
def test_bad_configs_raise_config_errors(name, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_objective(name, **overrides)
    assert issubclass(ConfigError, GrammarAEError)


def test_prior_samplers():
    assert isinstance(build_objective("vae").prior_sampler(3), StandardNormalSampler)
    assert isinstance(build_objective("wae").prior_sampler(3), StandardNormalSampler)
    assert build_objective("rae-l2").prior_sampler(3) is None
    assert isinstance(build_objective("gmm", components=2).prior_sampler(3), GMMPrior)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_one_training_step_with_every_objective(name):
    """The interface as a trainer uses it: latent -> decode -> reconstruction -> objective -> step."""
    torch.manual_seed(0)
    data_dim, latent_dim, batch = 12, 10, 16  # the reference GMM prior needs latent_dim >= 10 < batch
    x = torch.randn(batch, data_dim)
    objective = build_objective(name)
    encoder = nn.Linear(data_dim, 2 * latent_dim if objective.stochastic_encoder else latent_dim)
    decoder = objective.prepare_decoder(nn.Sequential(nn.Linear(latent_dim, 8), nn.Tanh(), nn.Linear(8, data_dim)))
    if name == "gmm":
        objective.calibrate(batch, latent_dim, n_batches=5)
    params = [*encoder.parameters(), *decoder.parameters(), *objective.parameters()]
    optimiser = torch.optim.SGD(params, lr=1e-2)
    objective.train()
    out = encoder(x)
    enc = EncoderOutput(*out.chunk(2, dim=1)) if objective.stochastic_encoder else EncoderOutput(out)
    z = objective.latent(enc)
    with objective.decoding_context():
        decoded = decoder(z)
    squared_error = (decoded - x).pow(2)
    terms = objective(enc, z, decoded, ReconstructionTerms(squared_error.mean(), squared_error), decoder)
    assert all(torch.isfinite(value).all() for value in terms.values())
    optimiser.zero_grad()
    terms["loss"].backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0
    optimiser.step()
