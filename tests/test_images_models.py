"""Convolutional networks and the image autoencoder with every objective, trained by the shared Trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grammar_ae.data.images.datasets import ImageBatchSource, load_image_dataset
from grammar_ae.errors import ConfigError, DataError
from grammar_ae.models.image.model import ImageModelSpec, image_model_spec
from grammar_ae.models.image.networks import ConvDecoder, ConvEncoder, ConvNetConfig
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
