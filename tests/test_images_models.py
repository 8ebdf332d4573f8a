"""Convolutional networks and the image autoencoder with every objective, trained by the shared Trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grammar_ae.data.images.datasets import ImageBatchSource, load_image_dataset
from grammar_ae.errors import ConfigError, DataError
from grammar_ae.models.image.model import ImageModelSpec, image_model_spec
from grammar_ae.models.image.networks import ConvDecoder, ConvEncoder, ConvNetConfig
from grammar_ae.models.image.presets import image_objective_settings
from grammar_ae.objectives import OBJECTIVES
from grammar_ae.training import Trainer, TrainerConfig, load_checkpoint

TINY = 1 / 32


@pytest.fixture(scope="module")
def digits():
    return load_image_dataset("digits")


@pytest.mark.parametrize("channels, size", [(1, 16), (1, 32), (3, 32), (3, 64)])
def test_networks_shapes_and_output_range(channels, size):
    config = ConvNetConfig(channels, size, latent_dim=6, width=TINY, stochastic=True)
    encoded = ConvEncoder(config)(torch.rand(3, channels, size, size))
    assert encoded.mu.shape == (3, 6) and encoded.logvar.shape == (3, 6)
    decoded = ConvDecoder(config)(torch.randn(3, 6))
    assert decoded.shape == (3, channels, size, size)
    assert decoded.min() > 0 and decoded.max() < 1


def test_width_scales_filters_and_logvar_head_only_when_stochastic():
    narrow = ConvEncoder(ConvNetConfig(1, 32, 8, width=1 / 16))
    assert narrow.logvar is None and narrow(torch.rand(2, 1, 32, 32)).logvar is None
    widths = [m.out_channels for m in narrow.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [8, 16, 32, 64]
    decoder = ConvDecoder(ConvNetConfig(3, 64, 8, width=1 / 16))
    ups = [m.out_channels for m in decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert ups == [32, 16, 8] and decoder.dense.out_features == 64 * 8 * 8
    with pytest.raises(ConfigError, match="image size 28"):
        ConvNetConfig(1, 28, 8)
    with pytest.raises(ConfigError, match="width 0"):
        ConvNetConfig(1, 32, 8, width=0)


def test_reconstruction_is_the_per_pixel_mean_squared_error(digits):
    model = image_model_spec(digits.image_shape, 4, "ae", width=TINY).build()
    batch = torch.from_numpy(digits.images[:5])
    target = batch.float() / 255
    terms = model.reconstruction(torch.full_like(target, 0.5), batch)
    assert terms.squared_error.shape == (5, 256)
    assert terms.loss.item() == pytest.approx(((target - 0.5) ** 2).mean().item())
    assert model.reconstruction(target.clone(), batch).loss.item() == 0.0
    with pytest.raises(DataError, match="must be uint8"):
        model.inputs(target)
    generated = model.generate(torch.randn(2, 4))
    assert generated.dtype == torch.uint8 and generated.shape == (2, 1, 16, 16)


def test_spec_errors():
    with pytest.raises(ConfigError, match="missing latent_dim"):
        ImageModelSpec.from_dict({"image_shape": [1, 16, 16], "objective": {"name": "ae"}})
    with pytest.raises(ConfigError, match="objective 'vqvae' is unknown"):
        image_model_spec((1, 16, 16), 4, "vqvae")
    with pytest.raises(ConfigError, match="family is 'gvae'"):
        ImageModelSpec.from_dict({**image_model_spec((1, 16, 16), 4, "ae").to_dict(), "family": "gvae"})
    with pytest.raises(ConfigError, match="no setting 'gamma'"):
        image_model_spec((1, 16, 16), 4, "rae", gamma=1.0).build()
    with pytest.raises(ConfigError, match=r"image_shape \[1, 16, 8\] must be \[channels, side, side\]"):
        image_model_spec((1, 16, 8), 4, "ae")


def test_image_specs_carry_the_reference_weights_of_the_image_protocol():
    assert image_model_spec((1, 16, 16), 4, "rae-l2").objective == {"name": "rae-l2", "beta": 1e-4, "l2_weight": 1e-7}
    assert image_model_spec((1, 16, 16), 4, "rae-gp").objective["gp_weight"] == 0.5e-7
    assert image_model_spec((1, 16, 16), 4, "rae").objective == {"name": "rae", "beta": 5e-4}
    model = image_model_spec((1, 16, 16), 4, "rae-sn", width=TINY, beta=0.5).build()
    assert model.spec.objective == {
        "name": "rae-sn", "beta": 0.5, "l2_weight": 0.0, "gp_weight": 0.0, "spectral_norm": True,
    }
    assert model.spec.to_dict() == {
        "family": "image", "image_shape": [1, 16, 16], "latent_dim": 4, "width": TINY, "objective": model.spec.objective,
    }


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_every_objective_trains_one_epoch_on_digits(objective, digits, tmp_path):
    torch.manual_seed(0)
    model = image_model_spec(digits.image_shape, 10, objective, width=TINY).build()
    train, validation = ImageBatchSource(digits.images[:150]), ImageBatchSource(digits.images[150:200])
    config = TrainerConfig(epochs=1, batch_size=50, device="cpu")
    trainer = Trainer(model, train, validation, config, tmp_path, model.spec.to_dict(), {"data": digits.checksum}, quiet=True)
    summary = trainer.fit()
    final = summary["final"]
    assert np.isfinite(final["validation"]["loss"]) and 0 < final["validation"]["rec"] < 0.5

    state = load_checkpoint(tmp_path / "best.pt", map_location="cpu")
    rebuilt = ImageModelSpec.from_dict(state["model_spec"]).build()
    rebuilt.load_state_dict(state["model_state"])
    rebuilt.eval(), model.eval()
    batch = torch.from_numpy(digits.images[:4])
    assert torch.allclose(rebuilt.latent_means(batch), model.latent_means(batch))


def test_depth_repeats_each_convolution_with_the_strided_one_last():
    config = ConvNetConfig(1, 32, 8, width=1 / 16, depth=3)
    encoder, decoder = ConvEncoder(config), ConvDecoder(config)
    convolutions = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in convolutions] == [
        (k, s, filters) for filters in (8, 16, 32, 64) for k, s in ((3, 1), (3, 1), (4, 2))
    ]
    layers = [m for m in decoder.blocks if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert [(type(m).__name__, m.stride[0], m.out_channels) for m in layers] == [
        ("Conv2d", 1, 64), ("Conv2d", 1, 64), ("ConvTranspose2d", 2, 32),
        ("Conv2d", 1, 32), ("Conv2d", 1, 32), ("ConvTranspose2d", 2, 16), ("Conv2d", 1, 1),
    ]
    assert encoder(torch.rand(2, 1, 32, 32)).mu.shape == (2, 8)
    assert decoder(torch.randn(2, 8)).shape == (2, 1, 32, 32)


def test_specs_of_older_runs_describe_the_same_model_and_store_only_changed_settings():
    """Specs written before depth, the latent options and the reconstruction setting lack them; they
    must read back unchanged (a resumed run compares specs) and build the same parameters."""
    old = {"family": "image", "image_shape": [1, 16, 16], "latent_dim": 4, "width": TINY, "objective": {"name": "ae", "beta": 0.0, "l2_weight": 0.0, "gp_weight": 0.0, "spectral_norm": False}}
    spec = ImageModelSpec.from_dict(old)
    assert spec.to_dict() == old and spec.reconstruction == "mse" and spec.network.depth == 1
    keys = set(spec.build().state_dict())
    assert {key.split(".")[1] for key in keys if key.startswith("encoder.")} == {"features", "mu"}
    changed = image_model_spec((1, 16, 16), 4, "vae", TINY, network={"depth": 2, "latent_norm": "noise", "latent_noise_std": 0.1}, reconstruction="bce")
    stored = changed.to_dict()
    assert {key: stored[key] for key in ("depth", "latent_norm", "latent_noise_std", "reconstruction")} == {
        "depth": 2, "latent_norm": "noise", "latent_noise_std": 0.1, "reconstruction": "bce"}
    assert "latent_layer" not in stored and ImageModelSpec.from_dict(stored) == changed


@pytest.mark.parametrize("norm, axis", [("batch", 0), ("layer", 1)])
def test_batch_and_layer_norm_standardise_the_code(norm, axis):
    torch.manual_seed(0)
    encoder = ConvEncoder(ConvNetConfig(1, 16, 6, width=TINY, latent_norm=norm)).train()
    mu = encoder(3 * torch.rand(40, 1, 16, 16)).mu.detach()
    assert torch.allclose(mu.mean(dim=axis), torch.zeros(1), atol=1e-5)
    assert torch.allclose(mu.var(dim=axis, unbiased=False), torch.ones(1), atol=5e-3)  # eps 1e-5 in the denominator


def test_spectral_norm_bounds_the_mean_head_and_noise_is_added_in_training_only():
    torch.manual_seed(0)
    encoder = ConvEncoder(ConvNetConfig(1, 16, 6, width=TINY, latent_norm="spectral")).train()
    for _ in range(30):  # one power iteration per training forward pass
        encoder(torch.rand(4, 1, 16, 16))
    assert torch.linalg.matrix_norm(encoder.mu.weight.detach(), 2).item() == pytest.approx(1.0, abs=1e-3)
    noisy = ConvEncoder(ConvNetConfig(1, 16, 6, width=TINY, latent_norm="noise", latent_noise_std=0.5))
    codes = torch.zeros(4000, 6)
    assert noisy.latent_norm.train()(codes).std().item() == pytest.approx(0.5, rel=0.03)
    assert torch.equal(noisy.latent_norm.eval()(codes), codes)


def test_a_frozen_latent_layer_keeps_its_weights_and_a_trainable_one_learns(digits):
    batch = torch.from_numpy(digits.images[:20])
    for kind in ("frozen", "trainable"):
        torch.manual_seed(0)
        model = image_model_spec(digits.image_shape, 4, "ae", TINY, network={"latent_layer": kind}).build()
        before = model.encoder.latent_layer.weight.detach().clone()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.loss(batch)["loss"].backward()
        optimizer.step()
        assert torch.equal(model.encoder.latent_layer.weight, before) == (kind == "frozen")


def test_bce_reconstruction_and_the_sizes_an_objective_is_given(digits):
    batch = torch.from_numpy(digits.images[:5])
    target = batch.float() / 255
    decoded = torch.rand(5, 1, 16, 16) * 0.98 + 0.01
    model = image_model_spec(digits.image_shape, 4, "vae", TINY, reconstruction="bce").build()
    terms = model.reconstruction(decoded, batch)
    assert terms.loss.item() == pytest.approx(torch.nn.functional.binary_cross_entropy(decoded, target).item(), rel=1e-6)
    assert torch.allclose(terms.squared_error, (decoded - target).pow(2).flatten(1))
    sigma = image_model_spec(digits.image_shape, 4, "trainable-sigma", TINY, variant="diag-d").build().objective
    assert (sigma.config.latent_dim, sigma.config.data_dim, sigma.head[-1].out_features) == (4, 256, 256)


def test_beta_weights_the_kl_relative_to_the_image_default():
    shape = (1, 16, 16)
    assert image_objective_settings("vae", {"beta": 0.01}, shape) == ({"kl_weight": 0.01 / 256}, "mse")
    assert image_objective_settings("ar-elbo", {"beta": 0.5, "variant": "diag-d"}, shape) == (
        {"kl_weight": 0.5, "variant": "diag-d"}, "mse")
    assert image_objective_settings("rae", {"beta": 0.01, "reconstruction": "bce"}, shape) == ({"beta": 0.01}, "bce")
    assert image_objective_settings("vae", {"kl_weight": 0.3}, shape) == ({"kl_weight": 0.3}, "mse")
