"""Reconstruction, prior validity, uniqueness and novelty of a trained sequence model."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from grammar_ae.chemistry import validity_check
from grammar_ae.data.readers import read_strings
from grammar_ae.errors import ConfigError
from grammar_ae.evaluation.molecules import moses_metrics
from grammar_ae.models.sequence.run import TrainedSequenceModel
from grammar_ae.utils.config_files import check_types
from grammar_ae.utils.progress import progress_bar, warn
from grammar_ae.utils.provenance import provenance

STOCHASTIC_OBJECTIVES = {"vae", "cvvae", "2svae", "ar-elbo"}
COLLAPSED_UNIQUENESS = 0.1
"""Below this fraction of distinct valid samples, evaluate warns that the samples collapse."""


@dataclass
class EvaluationConfig:
    items: int = 1000  # held-out items for reconstruction
    encode_samples: int = 10  # stochastic encoders: encodings per item
    decode_samples: int = 100  # stochastic encoders: decodes per encoding
    prior_samples: int = 1000
    seed: int = 0
    reference: str | None = None  # molecules: SMILES file the MOSES metrics compare with (default: held-out data)
    reference_items: int = 10_000  # molecules: at most this many reference molecules
    moses: bool = True  # molecules: MOSES metrics of the prior samples

    def __post_init__(self) -> None:
        check_types(self, "evaluation setting")
        for name in ("items", "encode_samples", "decode_samples", "prior_samples", "reference_items"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluation setting {name}={getattr(self, name)!r}: expected an integer >= 1")


def evaluate_sequence_model(model: TrainedSequenceModel, config: EvaluationConfig, progress: bool = True) -> dict:
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    held_out = held_out_items(model, config, rng)
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
    samples = {}
    moses = model.grammar_name == "smiles" and config.moses
    kinds = ("prior", "gaussian", "gmm")
    with progress_bar("samples", total=len(kinds) + int(moses), enabled=progress) as advance:
        for kind in kinds:
            advance(0, status=f"decode {config.prior_samples:,} {kind} samples")
            z = model.sampler(kind).sample(config.prior_samples, torch.Generator().manual_seed(config.seed))
            samples[kind] = model.decode(z)
            quality = sample_quality(samples[kind], training, valid)
            if quality["validity"] > 0 and quality["uniqueness"] < COLLAPSED_UNIQUENESS:
                warn(f"{kind} samples collapse: uniqueness {quality['uniqueness']:.3g} (distinct among the valid ones)")
            result.update({f"{kind}_{k}": v for k, v in quality.items()})
            advance(1)
        result["prior_sampler"] = "training prior" if model.prior_sampler() is not None else "fitted gaussian"
        result["uniqueness"], result["novelty"] = result["prior_uniqueness"], result["prior_novelty"]
        if moses:
            reference, source = reference_molecules(model, config, rng)
            advance(0, status=f"MOSES metrics against {len(reference):,} reference molecules")
            result.update(moses_metrics(samples["prior"], reference))
            result["reference"] = {"source": source, "molecules": len(reference)}
            advance(1)
    result["config"] = asdict(config)
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["provenance"] = provenance()
    return result


def held_out_items(model: TrainedSequenceModel, config: EvaluationConfig, rng: np.random.Generator) -> list[str]:
    """The held-out items reconstruction is measured on: ``config.items`` of them drawn with ``rng``
    (the evaluation's first draw), or all there are."""
    held_out = model.validation_strings()
    if len(held_out) > config.items:
        return [held_out[i] for i in np.sort(rng.choice(len(held_out), config.items, replace=False))]
    if len(held_out) < config.items:
        warn(f"the run holds {len(held_out):,} held-out items; reconstruction uses them all, not {config.items:,}")
    return held_out


def reference_molecules(model: TrainedSequenceModel, config: EvaluationConfig, rng: np.random.Generator) -> tuple[list[str], str]:
    """The molecules the MOSES metrics compare with, and where they come from: a file, else the
    held-out data (drawn with ``rng`` after ``held_out_items``)."""
    if config.reference is not None:
        strings = read_strings(Path(config.reference)).strings
        source = str(config.reference)
    else:
        strings = model.validation_strings()
        source = "held-out data"
    if len(strings) > config.reference_items:
        strings = [strings[i] for i in np.sort(rng.choice(len(strings), config.reference_items, replace=False))]
    return strings, source


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
            encoded = network.encode_batch(chunk)
            targets = [network.codec.input_form(s) for s in chunk]
            if not stochastic:
                decoded = network.decode_latents(encoded.mu)
                hits += sum(d == t for d, t in zip(decoded, targets))
                trials += len(chunk)
            else:
                objective.train()
                for _ in range(config.encode_samples):
                    z = objective.latent(encoded).repeat_interleave(config.decode_samples, dim=0)
                    decoded = network.decode_latents(z, sample=True, generator=generator, batch_size=len(z))
                    expected = np.repeat(np.array(targets, dtype=object), config.decode_samples)
                    hits += int(sum(d == e for d, e in zip(decoded, expected)))
                    trials += len(decoded)
                objective.eval()
            advance(len(chunk))
    return hits / trials if trials else 0.0
