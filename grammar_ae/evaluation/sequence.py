"""Reconstruction, prior validity, uniqueness and novelty of a trained sequence model."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from grammar_ae.chemistry import validity_check
from grammar_ae.models.sequence.run import TrainedSequenceModel
from grammar_ae.utils.progress import progress_bar
from grammar_ae.utils.provenance import provenance

STOCHASTIC_OBJECTIVES = {"vae", "cvvae", "2svae", "ar-elbo"}


@dataclass
class EvaluationConfig:
    items: int = 1000  # held-out items for reconstruction
    encode_samples: int = 10  # stochastic encoders: encodings per item
    decode_samples: int = 100  # stochastic encoders: decodes per encoding
    prior_samples: int = 1000
    seed: int = 0


def evaluate_sequence_model(model: TrainedSequenceModel, config: EvaluationConfig, progress: bool = True) -> dict:
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    held_out = model.validation_strings()
    if len(held_out) > config.items:
        held_out = [held_out[i] for i in np.sort(rng.choice(len(held_out), config.items, replace=False))]
    training = set(model.training_strings())
    valid = validity_check(model.grammar_name)
    result = {
        "checkpoint": str(model.checkpoint_file),
        "checkpoint_sha256": model.checkpoint_sha256,
        "epoch": model.epoch,
        "model": model.spec.preset,
        "objective": model.spec.objective["name"],
        "grammar": model.grammar_name,
        "held_out_items": len(held_out),
        "reconstruction_accuracy": _reconstruction(model, held_out, config, progress),
    }
    for kind in ("prior", "gaussian", "gmm"):
        z = model.sampler(kind).sample(config.prior_samples, torch.Generator().manual_seed(config.seed))
        result.update({f"{kind}_{k}": v for k, v in sample_quality(model.decode(z), training, valid).items()})
    result["prior_sampler"] = "training prior" if model.prior_sampler() is not None else "fitted gaussian"
    result["config"] = asdict(config)
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["provenance"] = provenance()
    return result


def sample_quality(strings: list[str | None], training: set[str], valid) -> dict:
    """validity (fraction valid), uniqueness (distinct among valid), novelty (distinct valid not in training)."""
    kept = [s for s in strings if valid(s)]
    distinct = set(kept)
    return {
        "validity": len(kept) / len(strings) if strings else 0.0,
        "uniqueness": len(distinct) / len(kept) if kept else 0.0,
        "novelty": len(distinct - training) / len(distinct) if distinct else 0.0,
    }


@torch.no_grad()
def _reconstruction(model: TrainedSequenceModel, strings: list[str], config: EvaluationConfig, progress: bool) -> float:
    """Exact-match accuracy; stochastic encoders: encode and decode several times (GVAE protocol)."""
    network, objective = model.model, model.model.objective
    stochastic = objective.name in STOCHASTIC_OBJECTIVES
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    batch = 100 if stochastic else 1000
    hits = trials = 0
    with progress_bar("reconstruction", total=len(strings), enabled=progress) as advance:
        for start in range(0, len(strings), batch):
            chunk = strings[start : start + batch]
            encoded = network.encode(network.inputs(network.codec.encode(chunk).to(model.device)))
            if not stochastic:
                decoded = network.decode_latents(encoded.mu)
                hits += sum(d == network.codec.parser.tokenizer.normalize(s) for d, s in zip(decoded, chunk))
                trials += len(chunk)
            else:
                targets = [network.codec.parser.tokenizer.normalize(s) for s in chunk]
                objective.train()
                for _ in range(config.encode_samples):
                    z = objective.latent(encoded)
                    logits = network.decode(z.repeat_interleave(config.decode_samples, dim=0)).float()
                    decoded = network.codec.decode(logits, sample=True, generator=generator)
                    expected = np.repeat(np.array(targets, dtype=object), config.decode_samples)
                    hits += int(sum(d == e for d, e in zip(decoded, expected)))
                    trials += len(decoded)
                objective.eval()
            advance(len(chunk))
    return hits / trials if trials else 0.0
