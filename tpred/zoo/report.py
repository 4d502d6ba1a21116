"""Summary statistics of a built zoo and the README that reports them.

`informativeness(...)` measures what issue 4 asks of the zoo: accuracies not saturated, models
that differ per dataset, a best model that changes with the target, rankings that depend on domain
match and source classes, and transferability scores that correlate with the recorded accuracies.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

if TYPE_CHECKING:
    from tpred.zoo.build import ZooTables

#: text after this line of an existing README.md is kept when the README is regenerated
KEEP_MARKER = "<!-- generated above; text below this line is kept by rebuilds -->"


@dataclass(frozen=True)
class Informativeness:
    """The headline figures (see `informativeness`)."""

    accuracy_median: float
    std_median: float
    overall_best: str
    share_best_differs: float
    domain_match_mean: float
    domain_mismatch_mean: float
    domain_match_residual: float
    logme_spearman: float
    logme_weighted_tau: float


def accuracy_matrix(records: pd.DataFrame) -> pd.DataFrame:
    """Records as a models × datasets frame."""
    return records.pivot(index="model", columns="dataset", values="accuracy")


def interaction(acc: pd.DataFrame) -> pd.DataFrame:
    """Accuracy minus model and dataset effects (double centring): what is left depends on the
    (model, dataset) combination, i.e. what changes rankings between datasets."""
    return (acc.sub(acc.mean(axis=1), axis=0).sub(acc.mean(axis=0), axis=1)
            + float(acc.to_numpy().mean()))


def score_correlations(records: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Per metric: mean over datasets of Spearman and weighted τ between score and accuracy
    across models, the datasets used (pairs scored for ≥ 3 models, not constant) and the share
    of datasets with a positive Spearman."""
    acc = accuracy_matrix(records)
    rows = []
    for metric, group in scores.groupby("metric", sort=True):
        wide = group.pivot(index="model", columns="dataset", values="value")
        rho, tau = [], []
        for dataset in wide.columns:
            s = wide[dataset].dropna()
            a = acc.loc[s.index, dataset]
            if len(s) < 3 or s.nunique() < 2 or a.nunique() < 2:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rho.append(stats.spearmanr(s, a).statistic)
                tau.append(stats.weightedtau(a.to_numpy(), s.to_numpy()).statistic)
        rows.append({"metric": metric, "datasets": len(rho),
                     "spearman": float(np.nanmean(rho)) if rho else np.nan,
                     "weighted_tau": float(np.nanmean(tau)) if tau else np.nan,
                     "positive_share": float(np.mean(np.array(rho) > 0)) if rho else np.nan})
    return pd.DataFrame(rows, columns=["metric", "datasets", "spearman", "weighted_tau",
                                       "positive_share"])


def domain_table(records: pd.DataFrame, models: pd.DataFrame,
                 datasets: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy per (model source domain, target domain)."""
    df = records.merge(models[["model", "source_domain"]], on="model").merge(
        datasets[["dataset", "domain"]], on="dataset")
    return df.pivot_table(index="source_domain", columns="domain", values="accuracy",
                          aggfunc="mean")


def _pair_frame(records: pd.DataFrame, models: pd.DataFrame,
                datasets: pd.DataFrame) -> pd.DataFrame:
    """One row per record with the interaction residual, domain match and class overlap."""
    acc = accuracy_matrix(records)
    resid = interaction(acc).stack().rename("residual").reset_index()
    df = records.merge(resid, on=["model", "dataset"])
    df = df.merge(models[["model", "source_domain", "source_classes"]], on="model")
    df = df.merge(datasets[["dataset", "domain", "labels"]], on="dataset")
    df["match"] = np.where(df["source_domain"] == "mixed", "mixed (every domain)",
                           np.where(df["source_domain"] == df["domain"], "match", "mismatch"))
    source = df["source_classes"].str.split(", ")
    target = df["labels"].str.split(", ")
    df["overlap"] = [len(set(s) & set(t)) / len(t) for s, t in zip(source, target, strict=True)]
    df["num_source_classes"] = source.str.len()
    return df


def rank_agreement(records: pd.DataFrame, datasets: pd.DataFrame) -> tuple[float, float]:
    """Mean Spearman between the model rankings of two datasets: same domain, other domain."""
    acc = accuracy_matrix(records)
    ranks = stats.rankdata(acc.to_numpy(), axis=0).T                          # [D, M]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(ranks)                  # [D, D]; NaN for a constant column
    if len(acc.columns) < 2:
        return float("nan"), float("nan")
    domain = datasets.set_index("dataset").loc[acc.columns, "domain"].to_numpy()
    same = domain[:, None] == domain[None, :]
    off = ~np.eye(len(domain), dtype=bool)
    with warnings.catch_warnings():  # an empty group's mean is NaN, said as such
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(rho[same & off])), float(np.nanmean(rho[~same]))


def informativeness(tables: ZooTables) -> Informativeness:
    """The headline figures of a built zoo."""
    acc = accuracy_matrix(tables.records)
    best = acc.mean(axis=1).idxmax()
    pairs = _pair_frame(tables.records, tables.models, tables.datasets)
    by_match = pairs.groupby("match")
    corr = score_correlations(tables.records, tables.scores).set_index("metric")
    logme = corr.loc["logme"] if "logme" in corr.index else pd.Series(
        {"spearman": np.nan, "weighted_tau": np.nan})
    return Informativeness(
        accuracy_median=float(np.median(acc.to_numpy())),
        std_median=float(acc.std(axis=0).median()),
        overall_best=str(best),
        share_best_differs=float((acc.loc[best] < acc.max(axis=0)).mean()),
        domain_match_mean=float(by_match["accuracy"].mean().get("match", np.nan)),
        domain_mismatch_mean=float(by_match["accuracy"].mean().get("mismatch", np.nan)),
        domain_match_residual=float(by_match["residual"].mean().get("match", np.nan)),
        logme_spearman=float(logme["spearman"]),
        logme_weighted_tau=float(logme["weighted_tau"]),
    )


# ---------------------------------------------------------------------------------- README
def _md(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    """A frame as a Markdown table (no tabulate dependency); floats with `floatfmt`."""
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, *row in df.itertuples(name=None):  # itertuples keeps each column's type
        cells = [floatfmt.format(v) if isinstance(v, float | np.floating) else str(v)
                 for v in row]
        lines.append("| " + " | ".join([str(idx)] + cells) + " |")
    return "\n".join(lines)


def render_readme(tables: ZooTables, *, seed: int, small: bool,
                  existing: Path | None = None) -> str:
    """README.md of a built zoo: how it was built and the figures of this build.

    Args:
        existing: a README.md whose text after `KEEP_MARKER` is carried over.
    """
    info = informativeness(tables)
    acc = accuracy_matrix(tables.records)
    models, datasets = tables.models, tables.datasets
    pairs = _pair_frame(tables.records, models, datasets)
    corr = score_correlations(tables.records, tables.scores).set_index("metric")
    same, other = rank_agreement(tables.records, datasets)
    t = {k: f"{v:.0f} s" for k, v in tables.seconds.items()}

    per_model = models.set_index("model")[
        ["architecture_family", "source_domain", "num_source_classes", "epochs",
         "num_parameters", "flops", "feature_dim", "source_accuracy"]].copy()
    per_model["mean_accuracy"] = acc.mean(axis=1)
    per_model["datasets_won"] = (acc == acc.max(axis=0)).sum(axis=1)
    per_model = per_model.sort_values("mean_accuracy", ascending=False)

    match = pairs.groupby("match")[["accuracy", "residual"]].agg(["mean", "count"])
    match = pd.DataFrame({"mean accuracy": match[("accuracy", "mean")],
                          "mean interaction residual": match[("residual", "mean")],
                          "pairs": match[("accuracy", "count")]})
    subset = pairs[pairs["num_source_classes"] < 10].copy()
    seen = "target classes seen in pre-training"
    subset[seen] = pd.cut(subset["overlap"], [-0.01, 0.0, 0.999, 1.0],
                          labels=["none", "some", "all"])
    overlap = subset.groupby(seen, observed=True)["residual"].agg(["mean", "count"]).rename(
        columns={"mean": "mean interaction residual", "count": "pairs"})
    meta = datasets.set_index("dataset").loc[acc.columns]
    by_grid = {col: acc.T.groupby(meta[col]).mean().mean(axis=1).rename("mean accuracy")
               .to_frame() for col in ("num_classes", "samples_per_class")}
    kinds = tables.errors.get("kind", pd.Series("error", index=tables.errors.index))
    error_counts = (tables.errors.groupby(["metric", kinds.rename("kind")]).size()
                    .unstack("kind", fill_value=0) if len(tables.errors) else None)
    quantiles = " / ".join(f"{q:.3f}" for q in
                           np.quantile(acc.to_numpy(), [0.05, 0.25, 0.5, 0.75, 0.95]))

    def ok(cond: bool) -> str:
        return "yes" if cond else "**no**"

    def join(values) -> str:
        return ", ".join(str(v) for v in sorted(pd.unique(values)))

    checks = pd.DataFrame(
        [("median per-dataset std of accuracy across models ≥ 0.03",
          f"{info.std_median:.3f}", ok(info.std_median >= 0.03)),
         (f"share of datasets whose best model is not the overall best "
          f"({info.overall_best}) ≥ 30 %", f"{100 * info.share_best_differs:.0f} %",
          ok(info.share_best_differs >= 0.3)),
         ("accuracy not saturated: median < 0.95", f"{info.accuracy_median:.3f}",
          ok(info.accuracy_median < 0.95)),
         ("a model does better on its own source domain (mean interaction residual > 0)",
          f"{info.domain_match_residual:+.3f}", ok(info.domain_match_residual > 0)),
         ("LogME correlates positively with accuracy (mean per-dataset Spearman / "
          "weighted τ)", f"{info.logme_spearman:.3f} / {info.logme_weighted_tau:.3f}",
          ok(info.logme_spearman > 0 and info.logme_weighted_tau > 0))],
        columns=["requirement (issue 4)", "this build", "holds"]).set_index(
        "requirement (issue 4)")
    command = f"python -m tpred.zoo build --out data/digits-zoo --seed {seed}"
    command += " --small" if small else ""

    text = f"""# digits-zoo: the embedded default model zoo

Built by `{command}` (tpred/zoo/), on the CPU from
`sklearn.datasets.load_digits` (1,797 8×8 images, 10 classes) and small PyTorch networks, the way
DomainNet-270 was made (../shared/benchmarks/domainnet270/README.md). Do not edit the CSVs by
hand: rebuild them. The build is deterministic for a seed (single-threaded torch with
deterministic algorithms, BLAS limited to one thread, every draw keyed by the seed).

## How it is made

1. The images are split once, stratified, into a source pool (50 %) and a disjoint target pool
   (50 %); the source pool is split again into source-train (75 %) and source-test (25 %).
2. **Domains** are image transforms (tpred/zoo/domains.py): {join(datasets['domain'])}.
3. **{len(models)} source models** (models.csv) of {models['architecture_family'].nunique()}
   families ({join(models['architecture_family'])}), trained with Adam on different source
   tasks: a domain (or `mixed`: every domain), a class subset, an epoch budget
   ({models['epochs'].min()} to {models['epochs'].max()} epochs;
   {int((models['epochs'] == 0).sum())} untrained). Measured metadata: `num_parameters`
   (counted), `flops` (`torch.utils.flop_counter`, one image), `feature_dim` (penultimate
   layer), `source_accuracy` (source-test images of its task), `pretrain_dataset` (text).
4. **{len(datasets)} target datasets** (datasets.csv): domain × num_classes
   ({join(datasets['num_classes'])}) × samples_per_class ({join(datasets['samples_per_class'])})
   × label division ({join(datasets['division'])}; as in DomainNet-270, a and c are the first
   and last classes of a random permutation, b half of each; the same label sets in every
   domain and at every sample size). Text columns `labels` (class names, comma-separated) and
   `domain`.
5. **records.csv** ({acc.size} rows, the full matrix): for every (model, dataset), a logistic-
   regression head (sklearn, C = 1, standardised features) on the frozen penultimate features
   of the train part (`samples_per_class` images per class), tested on every other target-pool
   image of those classes in that domain; the mean test accuracy over {tables.resamplings}
   train/test draws.
6. **scores.csv** ({len(tables.scores)} values): every `tpred.scores` metric
   ({join(tables.scores['metric'])}) on the train part of the first draw; what a metric
   cannot score is in **scores.errors.csv** with the reason (kind `error`,
   {int((kinds == 'error').sum())} rows), so every pair × metric is in one of the two; a value
   that is kept but means nothing is flagged there too (kind `note`, {int((kinds == 'note').sum())}
   rows: an H-score saturated at C − 1 because the feature dimension is at least the number of
   samples; rank with `hscore_shrinkage` or `logme` instead). The arrays are kept in
   `features/<model>/<dataset>.npz` (`features`, `labels`, `probs`; git-ignored), so
   `python -m tpred.score --features data/digits-zoo/features --out scores.csv` recomputes them.
7. **The networks** are kept as `weights/<model>.safetensors` (git-ignored) and the plan and
   seed as `zoo.json`: the model spec `digits:<model>` and the data source `digits:<dataset>`
   (`tpred.zoo.hub`) re-create a source network and a target's train/test images without a
   rebuild (an absent weights file is re-trained exactly as the build trained it).

Build time: {t.get('total')} wall (train {t.get('train')}, features {t.get('extract')},
heads {t.get('heads')}, scores {t.get('scores')}), single-threaded, on a machine whose 2 cores
were shared with other jobs.

## Is the zoo informative?

{_md(checks)}

Accuracy quantiles (5 / 25 / 50 / 75 / 95 %): {quantiles}. Mean Spearman between the model
rankings of two datasets: {same:.3f} within a domain, {other:.3f} across domains.

The *interaction residual* is accuracy minus the model's mean, minus the dataset's mean, plus
the grand mean: positive where a model does better on a dataset than its overall quality and
the dataset's difficulty predict, i.e. what makes rankings differ between datasets.

### Models

{_md(per_model)}

### Mean accuracy per (model source domain, target domain)

{_md(domain_table(tables.records, models, datasets))}

{_md(match)}

### Source classes (models pre-trained on a class subset)

{_md(overlap) if len(overlap) else 'no such model'}

### Target size

{_md(by_grid['num_classes'])}

{_md(by_grid['samples_per_class'])}

## Transferability scores against the recorded accuracies

Per dataset, the correlation across models of the score (train part) with the recorded
accuracy, averaged over datasets (those where the metric scored ≥ 3 models and is not
constant); `positive_share`: share of those datasets with a positive Spearman.

{_md(corr)}

Errors and notes per metric (scores.errors.csv): {'none' if error_counts is None else ''}

{'' if error_counts is None else _md(error_counts)}
"""
    kept = ""
    if existing is not None and existing.is_file():
        old = existing.read_text()
        if KEEP_MARKER in old:
            kept = old.split(KEEP_MARKER, 1)[1].lstrip("\n")
    return text.rstrip() + "\n\n" + KEEP_MARKER + "\n" + kept
