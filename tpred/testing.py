"""Small deterministic stand-ins shared by tests, docs and examples: `toy_zoo()`, `HashEncoder`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tpred.config import NodeFeatureConfig
from tpred.data.zoo import Zoo

DOMAINS = ("photo", "sketch", "cartoon")
FAMILIES = ("cnn", "vit", "mlp")
CLASS_NAMES = ("cat", "dog", "car", "tree", "boat", "house", "bird", "fish")

#: node feature configs that fit `toy_zoo()`'s metadata
TOY_MODEL_FEATURES = NodeFeatureConfig(numeric=("num_parameters", "source_accuracy"),
                                       log=("num_parameters",),
                                       categorical=("architecture_family",))
TOY_DATASET_FEATURES = NodeFeatureConfig(numeric=("num_classes", "train_size"),
                                         log=("train_size",), categorical=("domain",),
                                         text=("labels", "domain"))


@dataclass(frozen=True)
class HashEncoder:
    """Test double for a BERT-family encoder: the same text gives the same vector in every process.

    Python's `hash()` of a string changes between processes; sha256 does not.
    """

    dim: int = 8
    name: str = "hash"

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
        rows = [np.random.default_rng(s).standard_normal(self.dim) for s in seeds]
        return torch.tensor(np.array(rows).reshape(len(texts), self.dim), dtype=torch.float32)


def toy_zoo(num_models: int = 8, num_datasets: int = 24, *, seed: int = 0,
            known_fraction: float = 1.0, noise: float = 0.02, with_scores: bool = True) -> Zoo:
    """A synthetic zoo with learnable structure, in memory.

    accuracy = sigmoid(quality_m + ease_d + affinity(family_m, domain_d) + noise), so the additive
    part, the metadata and the interaction all carry signal. Scores `score_a` (noisy accuracy)
    and `score_b` (noise only) exist for every pair.

    Shapes: models [num_models], datasets [num_datasets], records [≈ known_fraction · M · D].
    """
    rng = np.random.default_rng(seed)
    models = pd.DataFrame({
        "model": [f"m{i}" for i in range(num_models)],
        "architecture_family": [FAMILIES[i % len(FAMILIES)] for i in range(num_models)],
        "num_parameters": rng.integers(10**5, 10**8, size=num_models),
        "source_accuracy": rng.uniform(0.6, 0.9, size=num_models).round(4),
    })
    num_classes = rng.choice([2, 4, 8], size=num_datasets)
    datasets = pd.DataFrame({
        "dataset": [f"d{j}" for j in range(num_datasets)],
        "domain": [DOMAINS[j % len(DOMAINS)] for j in range(num_datasets)],
        "num_classes": num_classes,
        "train_size": num_classes * rng.choice([10, 30, 50], size=num_datasets),
        "labels": [", ".join(rng.choice(CLASS_NAMES, size=c, replace=False)) for c in num_classes],
    })
    quality = rng.normal(0, 0.6, num_models) + 2 * (models["source_accuracy"].to_numpy() - 0.75)
    ease = rng.normal(0.8, 0.5, num_datasets) - 0.2 * np.log2(num_classes)
    affinity = rng.normal(0, 0.5, (len(FAMILIES), len(DOMAINS)))
    fam = models["architecture_family"].map({f: i for i, f in enumerate(FAMILIES)}).to_numpy()
    dom = datasets["domain"].map({d: i for i, d in enumerate(DOMAINS)}).to_numpy()
    logit = quality[:, None] + ease[None, :] + affinity[fam][:, dom]             # [M, D]
    acc = 1 / (1 + np.exp(-(logit + rng.normal(0, noise * 4, logit.shape))))
    mi, di = np.meshgrid(np.arange(num_models), np.arange(num_datasets), indexing="ij")
    grid = pd.DataFrame({"model": models["model"].to_numpy()[mi.ravel()],
                         "dataset": datasets["dataset"].to_numpy()[di.ravel()],
                         "accuracy": acc.ravel().round(4)})
    keep = rng.random(len(grid)) < known_fraction
    records = grid[keep].reset_index(drop=True)
    scores = None
    if with_scores:
        score_a = grid.assign(metric="score_a",
                              value=logit.ravel() + rng.normal(0, 0.3, logit.size))
        score_b = grid.assign(metric="score_b", value=rng.normal(0, 1, logit.size))
        scores = pd.concat([score_a, score_b]).drop(columns="accuracy").reset_index(drop=True)
    return Zoo.from_frames(models, datasets, records, scores)


def write_zoo(zoo: Zoo, folder: str | Path) -> Path:
    """Write a zoo as the CSV files `load_zoo` reads (models, datasets, records, scores)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    zoo.models.reset_index().to_csv(folder / "models.csv", index=False)
    zoo.datasets.reset_index().to_csv(folder / "datasets.csv", index=False)
    zoo.records.to_csv(folder / "records.csv", index=False)
    zoo.scores.to_csv(folder / "scores.csv", index=False)
    return folder
