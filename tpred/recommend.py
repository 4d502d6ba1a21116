"""From a new dataset on disk to a ranked shortlist: predict first, then spend a budget of
forward passes where they can change the top-K most.

    python -m tpred.recommend --run runs/my-zoo --data my-images/ --top-k 5 --budget 4 \\
        --out shortlist/

1. The dataset's `datasets.csv` row is measured from the data as `tpred.extract` measures it
   (classes, samples per class, sizes, label names; a `digits:` source gives the zoo's full row).
   A column the run's dataset features need that cannot be measured (e.g. `domain`) is an error
   that asks for the row with --datasets CSV.
2. Every model of the run is predicted from metadata and text alone (no forward pass).
3. Then, while the budget lasts, the next `--batch-size` models are chosen by the rule below,
   re-created from the run's model specs (the `spec` column of its models table; `digits:` for a
   digits zoo), run over the dataset's training split (one forward pass over the split per model:
   features and source-head probabilities, `tpred.extract.extract_split`), scored with the run's
   transferability metrics (`tpred.scores.table.score_arrays`), and every model is predicted
   again with the new score edges.

The rule (`boundary_priority`): let tau be the midpoint of the K-th and (K+1)-th predicted
accuracies (the top-K boundary). A model not yet scored has priority Phi(-|mu - tau| / sigma),
with mu its predicted accuracy and sigma its calibrated std: the probability, under its
predictive normal distribution, that its accuracy lies on the other side of the boundary than
its prediction puts it, i.e. that measuring more about it moves it into or out of the top-K.
High predicted accuracy (near or above the boundary) and high uncertainty both raise it. Ties
(e.g. sigma undefined) go to the higher mu + sigma. A uniform calibration factor does not change
the order (it scales every z alike). `random` and `metadata` (the best prediction before any
forward pass first, in a fixed order) are the comparisons of `bench/bench_budget.py`.

Metrics with a per-dataset combine step over every candidate model (NCTI) are not computed: with
a budget only some candidates are scored, and a value normalised over those would not mean what
the run was trained on.

Writes to --out: `ranking.csv` (rank, model, predicted, std, scored, spec), `scores.csv` (the
measured scores, long), `steps.json` (the batches, the top-K after each, the measured row and
score errors), `report.md` and `ranking.png` (predicted accuracy ± std per model, scored models
marked). Bad input prints one line `python -m tpred.recommend: error: ...` and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from tpred.errors import NoScoresWarning, PartialScoresWarning

PROG = "python -m tpred.recommend"
RULES = ("tpred", "random", "metadata")
log = logging.getLogger("tpred.recommend")

#: scores of the given models on the new dataset: long `model, dataset, metric, value`
Scorer = Callable[[list[str]], pd.DataFrame]


# ------------------------------------------------------------------------------------ the rule
def boundary_priority(predicted: np.ndarray, std: np.ndarray, k: int) -> np.ndarray:
    """Probability that each model lies on the other side of the top-K boundary.

    tau = midpoint of the K-th and (K+1)-th largest `predicted`; priority = Phi(-|mu - tau| /
    sigma). A sigma that is NaN or <= 0 gives 0 (0.5 if mu == tau). With K >= the number of
    models there is no boundary: every priority is 1.

    Shapes: predicted [M], std [M] -> [M] in [0, 1].
    """
    mu = np.asarray(predicted, dtype=np.float64)
    sigma = np.asarray(std, dtype=np.float64)
    if k >= len(mu):
        return np.ones(len(mu))
    top = np.sort(mu)[::-1]
    tau = (top[k - 1] + top[k]) / 2
    gap = np.abs(mu - tau)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isfinite(sigma) & (sigma > 0), gap / sigma,
                     np.where(gap == 0, 0.0, np.inf))
    return norm.sf(z)


def next_models(ranking: pd.DataFrame, scored: Sequence[str], n: int, *, k: int,
                rule: str = "tpred", order: Sequence[str] | None = None,
                rng: np.random.Generator | None = None) -> list[str]:
    """The next `n` models to forward-pass (fewer when fewer are left).

    Args:
        ranking: the current predictions, columns `model, predicted, std`.
        scored: models already forward-passed (never chosen again).
        n: batch size.
        k: the K of the top-K (rule `tpred`).
        rule: `tpred` (`boundary_priority`, ties to the higher mu + sigma), `random` (uniform
            from `rng`), `metadata` (the first unscored models of `order`, the ranking before
            any forward pass).
        order: model order for `metadata`.
        rng: generator for `random`.
    """
    done = set(scored)
    left = ranking[~ranking["model"].isin(done)]
    if rule == "tpred":
        mu, sigma = left["predicted"].to_numpy(float), left["std"].to_numpy(float)
        priority = boundary_priority(ranking["predicted"].to_numpy(float),
                                     ranking["std"].to_numpy(float), k)[
            ~ranking["model"].isin(done).to_numpy()]
        tie = mu + np.nan_to_num(sigma, nan=0.0)
        pick = np.lexsort((-tie, -priority))[:n]      # priority first, then mu + sigma
        return list(left["model"].to_numpy()[pick])
    if rule == "random":
        if rng is None:
            raise ValueError("next_models: rule 'random' needs rng")
        models = left["model"].to_numpy()
        return list(rng.permutation(models)[:n])
    if rule == "metadata":
        if order is None:
            raise ValueError("next_models: rule 'metadata' needs order")
        return [m for m in order if m not in done][:n]
    raise ValueError(f"unknown rule {rule!r}; choose from {list(RULES)}")


# ------------------------------------------------------------------------------------ the loop
@dataclass(eq=False)
class Recommendation:
    """What `recommend` did.

    Attributes:
        dataset: the new dataset's id.
        metadata: its measured `datasets.csv` row.
        ranking: every model, best first: `rank, model, predicted, std, scored`.
        scored: the forward-passed models, in order.
        steps: one dict per prediction (`step`, `scored_now`, `top_k`: the K best then).
        scores: the measured scores (long `model, dataset, metric, value`).
        errors: score errors (`model, dataset, metric, kind, reason`).
        top_k, budget, rule: the settings.
        seconds: `{"predict": ..., "forward": ...}` wall-clock totals.
    """

    dataset: str
    metadata: dict[str, Any]
    ranking: pd.DataFrame
    scored: list[str]
    steps: list[dict[str, Any]]
    scores: pd.DataFrame
    errors: pd.DataFrame
    top_k: int
    budget: int
    rule: str
    seconds: dict[str, float] = field(default_factory=dict)


def recommend(predict: Callable[[pd.DataFrame | None], pd.DataFrame], scorer: Scorer, *,
              dataset: str, metadata: dict[str, Any] | None = None, models: Sequence[str],
              budget: int, top_k: int = 5, batch_size: int = 1, rule: str = "tpred",
              seed: int = 0) -> Recommendation:
    """Predict, then forward-pass up to `budget` models chosen by `rule`, re-predicting after
    each batch.

    Args:
        predict: scores so far (None before any) -> predictions `model, predicted, std` of every
            model (e.g. `Run.recommend` of the new dataset's row with those scores).
        scorer: models -> their measured scores (long); called once per batch, with exactly the
            models forward-passed in it.
        dataset: the new dataset's id.
        metadata: its row (kept for the report).
        models: every candidate model.
        budget: the number of forward passes (0 .. len(models)).
        top_k: K of the rule and of the report.
        batch_size: models per batch (re-prediction after each).
        rule: `tpred`, `random` or `metadata` (see `next_models`).
        seed: seed of `random`.

    Raises:
        ValueError: a budget, K or batch size out of range, an unknown rule.
    """
    if not 0 <= budget <= len(models):
        raise ValueError(f"--budget {budget}: must be between 0 and the number of models "
                         f"({len(models)})")
    if not 1 <= top_k <= len(models):
        raise ValueError(f"--top-k {top_k}: must be between 1 and the number of models "
                         f"({len(models)})")
    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: must be >= 1")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose from {list(RULES)}")
    rng = np.random.default_rng(seed)
    seconds = {"predict": 0.0, "forward": 0.0}
    scored: list[str] = []
    score_parts: list[pd.DataFrame] = []
    error_parts: list[pd.DataFrame] = []
    steps: list[dict[str, Any]] = []

    def step(now: list[str]) -> pd.DataFrame:
        start = time.perf_counter()
        scores = (pd.concat(score_parts, ignore_index=True) if score_parts else None)
        ranking = predict(scores if scores is not None and len(scores) else None)
        seconds["predict"] += time.perf_counter() - start
        ranking = ranking[["model", "predicted", "std"]].sort_values(
            "predicted", ascending=False, kind="stable")
        steps.append({"step": len(steps), "scored_now": now, "num_scored": len(scored),
                      "top_k": [{"model": m, "predicted": float(p),
                                 "std": None if pd.isna(s) else float(s)}
                                for m, p, s in ranking[["model", "predicted", "std"]]
                                .head(top_k).itertuples(index=False)]})
        return ranking

    ranking = step([])
    order = list(ranking["model"])
    tried: list[str] = []  # chosen once (forward-passed, or could not be): never again
    while len(scored) < budget and len(tried) < len(models):
        batch = next_models(ranking, tried, min(batch_size, budget - len(scored)), k=top_k,
                            rule=rule, order=order, rng=rng)
        start = time.perf_counter()
        got = scorer(batch)
        seconds["forward"] += time.perf_counter() - start
        scores, errors = got if isinstance(got, tuple) else (got, None)
        failed = (set() if errors is None or not len(errors)
                  else set(errors.loc[errors["metric"] == FORWARD, "model"]))
        passed = [m for m in batch if m not in failed]  # a failed load spends no pass
        tried.extend(batch)
        scored.extend(passed)
        score_parts.append(scores)
        if errors is not None and len(errors):
            error_parts.append(errors)
        ranking = step(passed)
    out = ranking.reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out["scored"] = out["model"].isin(scored)
    all_scores = (pd.concat(score_parts, ignore_index=True) if score_parts
                  else pd.DataFrame(columns=["model", "dataset", "metric", "value"]))
    errors = (pd.concat(error_parts, ignore_index=True) if error_parts
              else pd.DataFrame(columns=["model", "dataset", "metric", "kind", "reason"]))
    return Recommendation(dataset, dict(metadata or {}),
                          out[["rank", "model", "predicted", "std", "scored"]], scored, steps,
                          all_scores, errors, top_k, budget, rule, seconds)


# ------------------------------------------------------------------------ a run and its models
def scored_metrics(run) -> list[str]:
    """The run's score metrics that can be computed for some candidates only (no combine
    step over every candidate model, i.e. not NCTI)."""
    from tpred.scores.registry import get_metric

    return [m for m in run.zoo.score_metrics if get_metric(m).combine is None]


def measure(source: str, name: str | None = None):
    """A data source and its measured `datasets.csv` row (`tpred.tune.pipeline.measure_source`;
    default id: the folder or file name).

    Returns:
        (`tpred.extract.DataSource`, row dict with `dataset`).
    """
    from tpred.extract.sources import source_name
    from tpred.tune.pipeline import measure_source

    return measure_source(source, name or source_name(source))


#: the `metric` of an error row for a model that could not be loaded or run (no forward pass)
FORWARD = "(forward pass)"


def forward_scorer(run, data, dataset: str, *, metrics: Sequence[str], device: str = "cpu",
                   trust: bool = False, batch_size: int = 64, image_size: int | None = None,
                   passed: list[str] | None = None) -> Scorer:
    """A `Scorer` that re-creates each model from the run's spec and load options (the
    `load_*` cells tpred.extract recorded: random weights, feature layer, image size, seed),
    runs it over the dataset's training split (one forward pass per model) and scores the
    features. A model that cannot be loaded or run becomes an error row (metric `FORWARD`,
    kind `error`) and the others go on.

    Args:
        image_size: resize images to this size instead of the recorded one (as
            `tpred.extract --image-size`).
        passed: when given, every forward-passed model is appended to it.
    """
    import tpred.zoo.hub  # noqa: F401  (registers digits: in tpred.extract)
    from tpred.extract import extract_split, load_model
    from tpred.scores.table import ERROR_COLUMNS, score_arrays
    from tpred.tune.pipeline import model_options, model_spec

    def score(batch: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        pairs, failed = {}, []
        for model in batch:
            options = model_options(run, model)
            if image_size is not None:
                options["image_size"] = image_size
            # a user's model may raise anything on load or forward (a missing file, no
            # network for hub weights, a shape error): one error row, the rest goes on
            try:
                net = load_model(model_spec(run, model), device=device, trust=trust,
                                 name=model, **options)
                got = extract_split(net, data.train, batch_size=batch_size)
            except Exception as err:  # noqa: BLE001
                log.debug("%s could not be forward-passed", model, exc_info=True)
                text = str(err).strip()
                reason = type(err).__name__ + (f": {text.splitlines()[0]}" if text else "")
                warnings.warn(f"{model}: not scored ({reason})", UserWarning, stacklevel=2)
                failed.append((model, dataset, FORWARD, "error", reason))
                continue
            if passed is not None:
                passed.append(model)
            pairs[(model, dataset)] = ((got.features, got.labels) if got.probs is None
                                       else (got.features, got.labels, got.probs))
        scores, errors = (score_arrays(pairs, list(metrics), progress=False) if pairs else
                          (pd.DataFrame(columns=["model", "dataset", "metric", "value"]),
                           pd.DataFrame(columns=ERROR_COLUMNS)))
        if failed:
            errors = pd.concat([errors, pd.DataFrame(failed, columns=ERROR_COLUMNS)],
                               ignore_index=True)
        return scores, errors

    return score


def run_predictor(run, dataset: str, metadata: dict[str, Any], *, method: str | None = None,
                  datasets: str | Path | None = None
                  ) -> Callable[[pd.DataFrame | None], pd.DataFrame]:
    """`predict` for `recommend`: the run's predictions of every model for the new dataset
    (its metadata row, or its row from the `datasets` CSV) with the scores so far."""
    from tpred.tune.pipeline import Target, rank

    target = Target(None, metadata, str(dataset))

    def predict(scores: pd.DataFrame | None) -> pd.DataFrame:
        with warnings.catch_warnings():
            if scores is None:  # before any forward pass: metadata only is the point
                warnings.simplefilter("ignore", NoScoresWarning)
            # scoring only the shortlist is recommend's design, and its output says which
            # models were scored
            warnings.simplefilter("ignore", PartialScoresWarning)
            return rank(run, dataset, target, method=method, datasets=datasets, scores=scores)

    return predict


# --------------------------------------------------------------------------------- outputs
def write_outputs(rec: Recommendation, out: str | Path, *, specs: dict[str, str] | None = None,
                  run_path: str = "", source: str = "", method: str = "",
                  notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ranking.csv, scores.csv, steps.json, report.md and ranking.png into `out`
    (`notes`: lines of what the predictor did, e.g. the gnn's level move, in the report and
    steps.json)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"ranking": out / "ranking.csv", "scores": out / "scores.csv",
             "steps": out / "steps.json", "report": out / "report.md",
             "plot": out / "ranking.png"}
    ranking = rec.ranking.copy()
    if specs:
        ranking["spec"] = ranking["model"].map(specs)
    ranking.to_csv(paths["ranking"], index=False)
    rec.scores.to_csv(paths["scores"], index=False)
    paths["steps"].write_text(json.dumps({
        "dataset": rec.dataset, "metadata": _jsonable(rec.metadata), "run": run_path,
        "data": source, "method": method, "rule": rec.rule, "top_k": rec.top_k,
        "budget": rec.budget, "scored": rec.scored, "steps": rec.steps,
        "score_errors": rec.errors.to_dict("records"), "seconds": rec.seconds,
        "notes": list(notes)}, indent=1) + "\n")
    plot_ranking(rec, paths["plot"])
    paths["report"].write_text(report_markdown(rec, run_path=run_path, source=source,
                                               method=method, plot=paths["plot"].name,
                                               notes=notes))
    return paths


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


def report_markdown(rec: Recommendation, *, run_path: str = "", source: str = "",
                    method: str = "", plot: str = "ranking.png",
                    notes: Sequence[str] = ()) -> str:
    """The short Markdown report (`notes`: lines after the measured row)."""
    r = rec.ranking
    lines = [f"# Shortlist for `{rec.dataset}`", "",
             f"Run `{run_path}`, method `{method or 'default'}`, data `{source}`. "
             f"{len(rec.scored)} of {len(r)} models forward-passed and scored (budget "
             f"{rec.budget}, rule `{rec.rule}`, K = {rec.top_k}); the others are predicted "
             "from metadata, text and the scores of the scored ones.", "",
             "Measured dataset row: " + ", ".join(f"{k}={v}" for k, v in rec.metadata.items()),
             "", *[f"{note[:1].upper()}{note[1:]}.\n" for note in notes],
             "| rank | model | predicted accuracy | std | scored |", "|---|---|---|---|---|"]
    for row in r.itertuples(index=False):
        std = "" if pd.isna(row.std) else f"{row.std:.3f}"
        lines.append(f"| {row.rank} | {row.model} | {row.predicted:.3f} | {std} | "
                     f"{'yes' if row.scored else ''} |")
    lines += ["", "Top-K after each batch of forward passes:", ""]
    for s in rec.steps:
        now = ", ".join(s["scored_now"]) or "nothing (metadata and text only)"
        lines.append(f"- step {s['step']} (scored {now}): "
                     + ", ".join(t["model"] for t in s["top_k"]))
    unrun = rec.errors[rec.errors["metric"] == FORWARD]
    if len(unrun):
        lines += ["", f"Models that could not be loaded or run ({len(unrun)}; predicted "
                  "without their scores, no forward pass spent):", ""]
        lines += [f"- {e.model}: {e.reason}" for e in unrun.itertuples()]
    scoring = rec.errors[rec.errors["metric"] != FORWARD]
    for kind, title in (("error", "Scores that could not be computed"),
                        ("note", "Scores computed but flagged (kept in scores.csv; why not to "
                                 "trust them)")):
        if len(part := scoring[scoring["kind"] == kind]):
            lines += ["", f"{title} ({len(part)}):", ""]
            lines += [f"- {e.model} {e.metric}: {e.reason}" for e in part.itertuples()]
    lines += ["", f"![predicted accuracy ± std per model]({plot})", ""]
    return "\n".join(lines)


def plot_ranking(rec: Recommendation, path: Path) -> None:
    """Predicted accuracy ± std per model, best first; scored models filled and coloured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = rec.ranking
    y = np.arange(len(r))
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.28 * len(r)))  # 0.28 in per model
    for flag, style in ((False, dict(fmt="o", mfc="white", color="grey",
                                     label="predicted (no forward pass)")),
                        (True, dict(fmt="o", color="tab:blue",
                                    label="scored (forward-passed)"))):
        part = r["scored"].to_numpy() == flag
        if part.any():
            ax.errorbar(r["predicted"].to_numpy()[part], y[part],
                        xerr=np.nan_to_num(r["std"].to_numpy(float)[part]), capsize=2,
                        **style)
    ax.set_yticks(y, r["model"])
    ax.invert_yaxis()
    ax.axhline(rec.top_k - 0.5, color="tab:red", lw=0.8, ls="--", label=f"top-{rec.top_k}")
    lo, hi = ax.get_xlim()
    ax.set_xlim(max(lo, -0.02), min(hi, 1.02))  # an accuracy lives in [0, 1]
    ax.set_xlabel("predicted accuracy ± calibrated std")
    ax.set_title(f"{rec.dataset}: {len(rec.scored)}/{len(r)} models scored", fontsize=9)
    # below the axes: inside, it covers the last models' bars
    height = 1.2 + 0.28 * len(r)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.45 / (height - 0.8)),
              ncol=3, frameon=False)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ------------------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    from tpred.predict import add_run_arguments

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, run_help="run folder (holds checkpoint/), e.g. from tpred.train "
                                       "--fit-only",
                      trust_help="let files run code: an old pickle checkpoint, pickled torch "
                                 "modules, Hugging Face trust_remote_code (only files you trust)")
    parser.add_argument("--data", required=True,
                        help="the new dataset: any tpred.extract source (image folder, "
                             "datasets folder, hf:<name>, text CSV) or digits:<dataset>")
    parser.add_argument("--name", help="the dataset's id (default: the folder or file name)")
    parser.add_argument("--datasets", type=Path,
                        help="CSV with the dataset's row, for columns that cannot be measured")
    parser.add_argument("--top-k", type=int, default=None,
                        help="K of the shortlist (default 5, or every model of a smaller zoo)")
    parser.add_argument("--budget", type=int, default=None,
                        help="forward passes: models to run over the data and score (default: "
                             "all models)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="models forward-passed between two predictions (default 1)")
    parser.add_argument("--method", default=None, help="the run's predictor (default gnn)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--image-size", type=int, default=None,
                        help="image side for the models' inputs: the --image-size the zoo's "
                             "features were extracted with (default: each model's own)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="less logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s")
    import tpred
    from tpred.predict import level_line
    from tpred.tune.pipeline import model_spec

    try:
        run = tpred.load(args.run, trust=args.trust)
        data, metadata = measure(args.data, args.name)
        dataset = metadata["dataset"]
        if dataset in run.zoo.dataset_ids:
            raise ValueError(f"dataset {dataset!r} is already in the run's zoo; give the new "
                             f"dataset another id with --name")
        models = list(run.zoo.model_ids)
        budget = len(models) if args.budget is None else args.budget
        top_k = min(5, len(models)) if args.top_k is None else args.top_k
        specs = {m: model_spec(run, m) for m in models}
        passed: list[str] = []
        scorer = forward_scorer(run, data, dataset, metrics=scored_metrics(run),
                                device=args.device, trust=args.trust,
                                image_size=args.image_size, passed=passed)
        predict = run_predictor(run, dataset, metadata, method=args.method,
                                datasets=args.datasets)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rec = recommend(predict, scorer, dataset=dataset, metadata=metadata, models=models,
                            budget=budget, top_k=top_k, batch_size=args.batch_size)
        # one line per distinct warning (the same note comes after every batch)
        for message in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
            print(f"{PROG}: warning: {message}", file=sys.stderr)
    except ValueError as err:
        parser.error(str(err).splitlines()[0] if str(err) else type(err).__name__)
    line = level_line(_level_moves(run, metadata, args.datasets, args.method),
                      pd.DataFrame({"dataset": [dataset]}))
    paths = write_outputs(rec, args.out, specs=specs, run_path=str(args.run), source=args.data,
                          method=run.resolve_method(args.method), notes=[line] if line else [])
    top = rec.ranking.head(top_k)
    print(f"{dataset}: {len(passed)} forward pass(es) of {len(models)} models; top-{top_k}:")
    for row in top.itertuples(index=False):
        std = "" if pd.isna(row.std) else f" ± {row.std:.3f}"
        print(f"  {row.rank}. {row.model}  {row.predicted:.3f}{std}"
              f"{'  (scored)' if row.scored else ''}")
    if line:
        print(line)
    print(f"report: {paths['report']}", file=sys.stderr)
    return 0


def _level_moves(run, metadata: dict[str, Any], datasets: Path | None,
                 method: str | None) -> pd.Series:
    """`Run.level_moves` for the new dataset: its row from `datasets` (the CSV) or as measured.
    The move reads metadata and records only (no scores), so the final shift is this one."""
    with warnings.catch_warnings():        # the row's warnings were printed by the ranking
        warnings.simplefilter("ignore")
        ext = run.extend(datasets=datasets if datasets is not None else pd.DataFrame([metadata]))
    return run.level_moves(ext, method)


def budget_count(fraction: float, num_models: int) -> int:
    """Forward passes of a budget given as a fraction of the models (rounded half up)."""
    return min(num_models, int(math.floor(fraction * num_models + 0.5)))


if __name__ == "__main__":
    raise SystemExit(main())
