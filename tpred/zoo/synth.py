"""Synthetic zoos of any size from a planted model: scaling benchmarks with a known answer.

`python -m tpred.zoo synth --models M --datasets D --density p --out DIR [--seed S]` writes
`models.csv`, `datasets.csv`, `records.csv`, `scores.csv`, `config.yaml` (so that
`python -m tpred.train --config DIR/config.yaml` trains on it) and `synth.json` (the settings and
the planted model's variance shares) to DIR.

The planted model, on the logit scale, for model m and dataset d:

    logit[m, d] = mu + a[m] + b[d] + s * (U[m] @ G @ V[d]) / sd + noise[m, d]
    accuracy    = chance[d] + (1 - chance[d]) * sigmoid(logit),   chance[d] = 1 / num_classes[d]

* `a[m]`, the model effect: read from metadata (log parameter count, source accuracy, an effect
  per architecture family) plus a part no column explains.
* `b[d]`, the dataset effect: fewer classes and more samples per class are easier, plus a part no
  column explains.
* the interaction, rank <= K (K domains): `U[m]` is the model's source domain one-hot plus an
  affinity per architecture family; `V[d]` is the dataset's domain one-hot plus a little mixing;
  `G` = identity (a domain match helps) + a random K x K part. It is driven by the categorical
  columns `source_domain`, `architecture_family` and `domain`, and by the dataset's `labels` text
  (class names drawn from its domain's vocabulary), so a predictor that uses node features can
  learn what an additive one cannot.
* scores `proxy_strong` and `proxy_weak` exist for every record pair (they need no fine-tuning):
  within a dataset their Pearson correlation with the noise-free logit is about `score_corr`
  and `score_corr / 2`, on a per-dataset offset and scale (as real scores have).

The records are a uniform sample of `round(density * M * D)` distinct pairs, topped up so that
every dataset has at least 2 records and every model at least 1; nothing of size M x D is
built, so 10^4 models x 10^5 datasets at density 10^-3 take seconds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

#: domains and their class-name vocabularies (real words: a text encoder groups them)
VOCABULARY = {
    "natural": ("cat", "dog", "horse", "sparrow", "eagle", "oak", "tulip", "salmon", "frog",
                "butterfly", "deer", "owl"),
    "medical": ("tumor", "lesion", "nodule", "fracture", "pneumonia", "melanoma", "cyst",
                "edema", "retina", "polyp", "stenosis", "hemorrhage"),
    "satellite": ("forest", "river", "highway", "farmland", "harbor", "desert", "glacier",
                  "runway", "vineyard", "wetland", "stadium", "quarry"),
    "sketch": ("doodle", "outline", "stroke", "cartoon", "scribble", "silhouette", "hatching",
               "contour", "caricature", "stencil", "pencil", "crayon"),
    "texture": ("woven", "striped", "dotted", "marbled", "cracked", "porous", "braided",
                "fibrous", "scaly", "wrinkled", "knitted", "veined"),
    "document": ("invoice", "receipt", "letter", "form", "resume", "memo", "handwriting",
                 "signature", "table", "chart", "stamp", "barcode"),
}
DOMAINS = tuple(VOCABULARY)
FAMILIES = ("resnet", "vit", "convnext", "efficientnet", "mobilenet", "swin", "deit", "regnet")
SCORE_METRICS = ("proxy_strong", "proxy_weak")
#: standard deviations of the planted parts on the logit scale
MODEL_SD, DATASET_SD, INTERACTION_SD = 0.5, 0.6, 0.7
MIN_RECORDS_PER_DATASET = 2  # a cold-dataset fold needs 2 held-out models for a correlation


@dataclass(frozen=True)
class SynthSpec:
    """Settings of a synthetic zoo.

    Args:
        num_models, num_datasets: M and D (each >= 2).
        density: fraction of the M x D pairs that have a record, in (0, 1].
        seed: the one seed.
        noise: standard deviation of the record noise on the logit scale (>= 0).
        score_corr: within-dataset correlation of `proxy_strong` with the noise-free logit, in
            [0, 1] (`proxy_weak` gets half of it).
        text: list the `labels` text column as a dataset feature in `config.yaml` (embedding
            10^5 label lists with the default BERT-family encoder takes minutes on a CPU).
    """

    num_models: int
    num_datasets: int
    density: float
    seed: int = 0
    noise: float = 0.3
    score_corr: float = 0.7
    text: bool = True

    def __post_init__(self) -> None:
        for name in ("num_models", "num_datasets"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 2:
                raise ValueError(f"SynthSpec.{name} must be an int >= 2, got {value!r}")
        if not 0 < self.density <= 1:
            raise ValueError(f"SynthSpec.density must be in (0, 1], got {self.density!r}")
        if not self.noise >= 0:
            raise ValueError(f"SynthSpec.noise must be >= 0, got {self.noise!r}")
        if not 0 <= self.score_corr <= 1:
            raise ValueError(f"SynthSpec.score_corr must be in [0, 1], got {self.score_corr!r}")


@dataclass(frozen=True)
class SynthZoo:
    """The tables of a synthetic zoo and what was planted.

    Attributes:
        models: `model` + metadata [M rows]; datasets: `dataset` + metadata [D rows].
        records: `model, dataset, accuracy` [P rows], sorted; scores: `model, dataset, metric,
            value` [2 P rows].
        truth: `model, dataset, logit` [P rows]: the noise-free planted logit of each record.
        shares: variance of each planted part over the records (model, dataset, interaction,
            noise), as fractions of their sum.
    """

    models: pd.DataFrame
    datasets: pd.DataFrame
    records: pd.DataFrame
    scores: pd.DataFrame
    truth: pd.DataFrame
    shares: dict[str, float]


def synth_zoo(spec: SynthSpec) -> SynthZoo:
    """Draw a synthetic zoo from the planted model (module docstring).

    Shapes: per-model arrays [M], per-dataset arrays [D], per-record arrays [P]; the
    interaction factors U [M, K], V [D, K], G [K, K] with K = len(DOMAINS). Nothing [M, D].
    """
    rng = np.random.default_rng(spec.seed)
    num_m, num_d, k = spec.num_models, spec.num_datasets, len(DOMAINS)

    # models: metadata and the effect it explains
    family = rng.integers(len(FAMILIES), size=num_m)                              # [M]
    source = rng.integers(k, size=num_m)                                           # [M]
    log_params = rng.uniform(np.log(1e6), np.log(1e9), size=num_m)                # [M]
    source_acc = np.clip(0.55 + 0.04 * (log_params - np.log(1e6)) / np.log(10)
                         + rng.normal(0, 0.05, num_m), 0.3, 0.95)                  # [M]
    family_effect = rng.normal(0, 0.3, len(FAMILIES))
    a = (0.25 * _z(log_params) + 0.25 * _z(source_acc) + family_effect[family]
         + rng.normal(0, 0.25, num_m))                                            # [M]
    a = MODEL_SD * _z(a)

    # datasets: metadata and the effect it explains
    domain = rng.integers(k, size=num_d)                                           # [D]
    num_classes = rng.choice([2, 5, 10, 20, 50, 100], size=num_d)                 # [D]
    per_class = rng.choice([5, 10, 20, 50, 100, 500], size=num_d)                 # [D]
    b = -0.5 * _z(np.log(num_classes)) + 0.3 * _z(np.log(per_class)) + rng.normal(0, 0.4, num_d)
    b = DATASET_SD * _z(b)                                                         # [D]

    # the low-rank interaction, driven by source domain, family and domain
    family_affinity = rng.normal(0, 0.5, (len(FAMILIES), k))                      # [F, K]
    u = np.eye(k)[source] + family_affinity[family]                                # [M, K]
    v = np.eye(k)[domain] + rng.dirichlet(np.full(k, 0.5), size=num_d) * 0.3      # [D, K]
    g = np.eye(k) + rng.normal(0, 0.5 / np.sqrt(k), (k, k))                       # [K, K]

    mi, di = _sample_pairs(rng, num_m, num_d, spec.density)                        # [P] each
    raw = np.einsum("pk,kl,pl->p", u[mi], g, v[di])                                # [P]
    interaction = INTERACTION_SD * (raw - raw.mean()) / (raw.std() or 1.0)         # [P]
    logit = 0.8 + a[mi] + b[di] + interaction                                      # [P]
    noise = rng.normal(0, spec.noise, len(logit))                                  # [P]
    chance = 1.0 / num_classes[di]
    accuracy = chance + (1 - chance) / (1 + np.exp(-(logit + noise)))             # [P]

    model_ids = _ids("m", num_m)
    dataset_ids = _ids("d", num_d)
    models = pd.DataFrame({
        "model": model_ids,
        "architecture_family": np.asarray(FAMILIES)[family],
        "source_domain": np.asarray(DOMAINS)[source],
        "num_parameters": np.exp(log_params).round().astype(np.int64),
        "source_accuracy": source_acc.round(4),
    })
    datasets = pd.DataFrame({
        "dataset": dataset_ids,
        "domain": np.asarray(DOMAINS)[domain],
        "num_classes": num_classes,
        "samples_per_class": per_class,
        "train_size": num_classes * per_class,
        "labels": _labels(rng, domain, num_classes),
    })
    pairs = {"model": model_ids[mi], "dataset": dataset_ids[di]}
    records = pd.DataFrame({**pairs, "accuracy": accuracy.round(4)})
    truth = pd.DataFrame({**pairs, "logit": logit})
    scores = pd.concat([_score(rng, f"{name}", corr, di, logit, b[di], num_d, pairs)
                        for name, corr in zip(SCORE_METRICS, (spec.score_corr,
                                                              spec.score_corr / 2), strict=True)],
                       ignore_index=True)
    parts = {"model": a[mi], "dataset": b[di], "interaction": interaction, "noise": noise}
    variances = {name: float(np.var(x)) for name, x in parts.items()}
    total = sum(variances.values())
    shares = {name: round(var / total, 4) for name, var in variances.items()}
    return SynthZoo(models, datasets, records, scores, truth, shares)


def write_synth_zoo(spec: SynthSpec, out: str | Path) -> SynthZoo:
    """Draw a zoo (`synth_zoo`) and write its tables, `config.yaml` and `synth.json` to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    zoo = synth_zoo(spec)
    zoo.models.to_csv(out / "models.csv", index=False)
    zoo.datasets.to_csv(out / "datasets.csv", index=False)
    zoo.records.to_csv(out / "records.csv", index=False)
    zoo.scores.to_csv(out / "scores.csv", index=False)
    config = {
        "name": out.resolve().name,
        "data": {"root": str(out.resolve()), "records": "records.csv", "scores": "scores.csv"},
        "model_features": {"numeric": ["num_parameters", "source_accuracy"],
                           "log": ["num_parameters"],
                           "categorical": ["architecture_family", "source_domain"]},
        "dataset_features": {"numeric": ["num_classes", "samples_per_class", "train_size"],
                             "log": ["num_classes", "samples_per_class", "train_size"],
                             "categorical": ["domain"],
                             "text": ["labels"] if spec.text else []},
        "methods": ["additive", "lr", "mf", "knn", "score", "gnn"],
        "protocols": ["cold-dataset", "random"],
        "seeds": [0, 1, 2],
        "protocol": {"random_fractions": [0.5], "num_folds": 5, "domain_column": "domain"},
        "output_dir": "runs",
    }
    header = (f"# Synthetic zoo: python -m tpred.zoo synth --models {spec.num_models} --datasets "
              f"{spec.num_datasets} --density {spec.density} --seed {spec.seed}\n"
              f"# Train on it: python -m tpred.train --config {out / 'config.yaml'}\n")
    (out / "config.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False))
    (out / "synth.json").write_text(json.dumps(
        {"spec": asdict(spec), "num_records": len(zoo.records), "variance_shares": zoo.shares},
        indent=2) + "\n")
    return zoo


# ---------------------------------------------------------------------------------- helpers
def _z(x: np.ndarray) -> np.ndarray:
    """Standardised copy (a constant array gives zeros)."""
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x, dtype=np.float64)


def _ids(prefix: str, n: int) -> np.ndarray:
    width = len(str(n - 1))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _sample_pairs(rng: np.random.Generator, num_m: int, num_d: int,
                  density: float) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (model, dataset) positions: a uniform sample of the M x D grid (never built),
    topped up to `MIN_RECORDS_PER_DATASET` per dataset and 1 per model; sorted by model."""
    total = num_m * num_d
    flat = rng.choice(total, size=max(1, round(density * total)), replace=False)   # [P0]
    need = np.maximum(MIN_RECORDS_PER_DATASET - np.bincount(flat % num_d, minlength=num_d), 0)
    if need.any():
        taken = set(flat.tolist())
        added = []
        for d in np.flatnonzero(need):  # a few random models of this dataset that are new
            cand = rng.choice(num_m, size=min(num_m, need[d] + MIN_RECORDS_PER_DATASET + 4),
                              replace=False) * num_d + d
            new = [c for c in cand.tolist() if c not in taken][:need[d]]
            taken.update(new)
            added += new
        flat = np.concatenate([flat, np.asarray(added, dtype=flat.dtype)])
    lonely = np.flatnonzero(np.bincount(flat // num_d, minlength=num_m) == 0)
    flat = np.concatenate([flat, lonely * num_d + rng.integers(num_d, size=len(lonely))])
    flat = np.sort(flat)
    return flat // num_d, flat % num_d


def _labels(rng: np.random.Generator, domain: np.ndarray, num_classes: np.ndarray) -> list[str]:
    """Each dataset's class names: words of its domain's vocabulary (numbered when it has more
    classes than words), one word of another domain now and then."""
    out = []
    for dom, c in zip(domain, num_classes, strict=True):
        words = VOCABULARY[DOMAINS[dom]]
        shown = rng.choice(len(words), size=min(c, 6), replace=False)
        names = [words[i] for i in shown]
        if rng.random() < 0.2:
            other = VOCABULARY[DOMAINS[rng.integers(len(DOMAINS))]]
            names[-1] = other[rng.integers(len(other))]
        out.append(", ".join(names) + (f" and {c - len(names)} more" if c > len(names) else ""))
    return out


def _score(rng: np.random.Generator, name: str, corr: float, di: np.ndarray, logit: np.ndarray,
           dataset_part: np.ndarray, num_d: int, pairs: dict[str, np.ndarray]) -> pd.DataFrame:
    """A proxy score of every record pair: within a dataset, Pearson `corr` (in expectation) with
    the noise-free logit, then a per-dataset offset and scale."""
    within = logit - dataset_part                   # [P] what varies inside a dataset
    signal = (within - within.mean()) / (within.std() or 1.0)
    if corr >= 1:
        value = signal
    else:
        value = corr * signal + np.sqrt(1 - corr**2) * rng.standard_normal(len(logit))
    offset, scale = rng.normal(0, 3, num_d), rng.uniform(0.5, 2, num_d)            # [D] each
    return pd.DataFrame({**pairs, "metric": name, "value": offset[di] + scale[di] * value})
