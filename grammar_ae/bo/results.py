"""What a run reports: proposals.csv, latents.npy, summary.json and plots, all from its state.

Molecule runs add RDKit grids of the best three strings (``top3.png``) and of the best three
new ones (``top3_new.png``), each molecule labelled with its score and heavy-atom count
(penalized logP rewards size, so the count says how a score was reached).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from grammar_ae.bo.state import BOState, Proposal, objective_calls
from grammar_ae.bo.targets import Target
from grammar_ae.chemistry import heavy_atoms, molecule
from grammar_ae.utils.files import atomic_figure, atomic_path, atomic_write_json, atomic_write_npy, atomic_write_text
from grammar_ae.utils.provenance import provenance

CSV_COLUMNS = ("iteration", "index", "string", "valid", "score", "duplicate", "latent_row")


def format_score(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"


def proposals_csv(proposals: list[Proposal]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row, p in enumerate(proposals):
        score = "" if p.score is None else repr(p.score)
        writer.writerow([p.iteration, p.index, p.string, str(p.valid).lower(), score, str(p.duplicate).lower(), row])
    return buffer.getvalue()


def top_distinct(proposals: list[Proposal], target: Target, count: int = 3, new_only: bool = False) -> list[dict]:
    """The best ``count`` distinct valid strings (by the target's key), best first; with
    ``new_only`` only strings that were neither in the data nor proposed before."""
    best: dict[str, Proposal] = {}
    for p in proposals:
        if p.valid and not (new_only and p.duplicate):
            best.setdefault(target.key(p.string), p)
    chosen = list(best.values())
    order = target.ranked([p.score for p in chosen])[:count]
    entries = [{"string": chosen[i].string, "score": chosen[i].score, "iteration": chosen[i].iteration} for i in order]
    if target.grammar == "smiles":
        for entry in entries:
            entry["heavy_atoms"] = heavy_atoms(entry["string"])
    return entries


def best_so_far(proposals: list[Proposal], target: Target, iterations: int) -> list[float | None]:
    """Best valid score among the proposals up to each iteration (None before the first valid one)."""
    result, best = [], None
    for iteration in range(1, iterations + 1):
        scores = [p.score for p in proposals if p.iteration == iteration and p.valid]
        if scores:
            best = target.best(scores if best is None else [best, *scores])
        result.append(best)
    return result


def best_new_by_call(proposals: list[Proposal], target: Target) -> list[float]:
    """The best score among the new strings after each objective call on a new string."""
    result: list[float] = []
    for p in proposals:
        if p.valid and not p.duplicate:
            result.append(p.score if not result else target.best([result[-1], p.score]))
    return result


def build_summary(state: BOState, target: Target) -> dict:
    proposals = state.proposals
    valid_scores = [p.score for p in proposals if p.valid]
    found = None
    if target.optimum is not None:
        found = any(p.valid and target.reaches_optimum(p.score) for p in proposals)
    return {
        "target": target.name,
        "direction": target.direction,
        "grammar": target.grammar,
        "method": state.config.get("method", "bo"),
        "completed_iterations": state.completed_iterations,
        "proposed": len(proposals),
        "objective_calls": objective_calls(proposals),
        "valid": len(valid_scores),
        "fraction_valid": len(valid_scores) / len(proposals) if proposals else None,
        "average_score": float(np.mean(valid_scores)) if valid_scores else None,
        "top3": top_distinct(proposals, target),
        "top3_new": top_distinct(proposals, target, new_only=True),
        "best_so_far": best_so_far(proposals, target, state.completed_iterations),
        "best_new_by_call": best_new_by_call(proposals, target),
        "duplicates": sum(p.duplicate for p in proposals),
        "found_target": found,
        "training": state.training,
        "surrogate_test": state.surrogate_test,
        "trust_region": state.trust_region,
        "retrainings": state.retrainings,
        "config": state.config,
        "seed": state.config["seed"],
        "checkpoint_sha256": state.checkpoint_sha256,
        "timings": {
            "seconds": state.timings,  # per stage: one entry per iteration (encode, score_training: one)
            "cpu_seconds": state.cpu_timings,
            "total_per_stage": {stage: round(sum(times), 4) for stage, times in state.timings.items()},
        },
        "provenance": provenance(),
    }


def plot_best_so_far(path: Path, summary: dict) -> None:
    with atomic_figure(path, 120, figsize=(5, 3.5), layout="constrained") as figure:
        axes = figure.add_subplot()
        best = summary["best_so_far"]
        iterations = [i + 1 for i, value in enumerate(best) if value is not None]
        axes.plot(iterations, [value for value in best if value is not None], marker="o", label="best proposal")
        if summary["training"].get("best_score") is not None:
            axes.axhline(summary["training"]["best_score"], color="gray", linestyle="--", label="best in the starting data")
        axes.set_xlabel("iteration")
        axes.set_ylabel(f"{summary['target']} ({'higher' if summary['direction'] == 'maximize' else 'lower'} is better)")
        axes.set_xticks(range(1, len(best) + 1))
        axes.legend()


def draw_molecules(path: Path, entries: list[dict], per_row: int = 3) -> None:
    """An RDKit grid of ``entries`` (string, score, heavy_atoms), each labelled with its score and heavy atoms."""
    from rdkit.Chem import Draw

    mols = [molecule(entry["string"]) for entry in entries]
    legends = [
        f"{entry.get('label', '')}{entry['score']:.3f}, {entry['heavy_atoms']} heavy atoms" for entry in entries
    ]
    image = Draw.MolsToGridImage(mols, molsPerRow=min(per_row, len(mols)), subImgSize=(300, 300), legends=legends)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def write_outputs(out_dir: Path, state: BOState, target: Target) -> dict:
    """Write every output file of the run so far and return the summary."""
    summary = build_summary(state, target)
    atomic_write_text(out_dir / "proposals.csv", proposals_csv(state.proposals))
    if any(p.latent for p in state.proposals):
        atomic_write_npy(out_dir / "latents.npy", np.array([p.latent for p in state.proposals], dtype=np.float64))
    plot_best_so_far(out_dir / "best_so_far.png", summary)
    if target.grammar == "smiles":
        for key in ("top3", "top3_new"):
            if summary[key]:
                draw_molecules(out_dir / f"{key}.png", summary[key])
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
