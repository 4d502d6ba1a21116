"""From a trained run's ranking to a tuned model: pick the student and the top-K teachers, load
them by model spec, load the target's data, tune, and write the results.

Models and data go through `tpred.extract` (`load_model`, `open_source`): a run's model is
loaded from the `spec` column of its models table when it has one, else as `digits:<model>`
when the run's zoo is a digits zoo (its folder holds `zoo.json`; `digits:<folder>/<model>` for a
zoo other than the embedded one). Each model reads the target's items through its own
preprocessing (`transform`, `collate`); there is no augmentation, so every model's inputs are
prepared once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tpred.tune.fit import TuneConfig, TuneData, TuneResult, tune
from tpred.tune.student import Batchable, LoadedBackbone

log = logging.getLogger(__name__)

DIGITS = "digits:"
WEIGHTS_NAME = "student.safetensors"
REPORT_NAME = "tune.json"
PLOT_NAME = "curve.png"
#: the measured metadata of a generic data source kept for the run's datasets table
SOURCE_COLUMNS = ("dataset", "modality", "num_classes", "samples_per_class", "train_size",
                  "test_size", "labels")


@dataclass(frozen=True, eq=False)
class Target:
    """A target dataset: its `tpred.extract.DataSource` (train and test splits) and its
    `datasets.csv` row, measured from the data."""

    data: Any
    metadata: dict[str, Any]
    source: str

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.data.classes)


def zoo_folder(run) -> Path:
    """The run's zoo folder (`config.data.root`; a relative one: to the working directory)."""
    from tpred.data.tables import resolve_path

    return resolve_path(run.config.data.root)


def _digits_ref(folder: Path, name: str) -> str:
    """`digits:<name>` in the embedded zoo, else `digits:<folder>/<name>`."""
    from tpred.zoo.hub import zoo_root

    same = folder.resolve() == zoo_root(None).resolve()
    return f"{DIGITS}{name}" if same else f"{DIGITS}{folder.resolve()}/{name}"


def _model_row(run, model: str) -> dict[str, Any]:
    """`model`'s row of the run's models table.

    Raises:
        ValueError: the model is not in the run's zoo.
    """
    models = run.zoo.models
    if model not in models.index:
        raise ValueError(f"model {model!r} is not in the run's zoo; it has "
                         f"{list(models.index)}")
    return models.loc[model].to_dict()


def model_spec(run, model: str) -> str:
    """The spec that re-creates `model` of the run.

    Raises:
        ValueError: the model is not in the run's zoo, or nothing says how to load it.
    """
    if isinstance(spec := _model_row(run, model).get("spec"), str) and spec.strip():
        return spec.strip()
    from tpred.zoo.hub import is_digits_zoo

    if is_digits_zoo(zoo_folder(run)):
        return _digits_ref(zoo_folder(run), model)
    raise ValueError(f"model {model!r}: the run's models table has no 'spec' column and its zoo "
                     f"{zoo_folder(run)} is not a digits zoo (no zoo.json), so the model cannot "
                     f"be re-created")


def model_options(run, model: str) -> dict[str, Any]:
    """How `model` of the run was loaded when its features were extracted: `load_model`'s
    `pretrained`, `layer`, `image_size` and `seed`, from the `load_*` cells of its models.csv
    row (`tpred.extract` writes them; blank or absent: the loader's defaults, with `pretrained`
    False in the row meaning random weights).

    Raises:
        ValueError: the model is not in the run's zoo, or a bad `load_*` cell (named).
    """
    from dataclasses import asdict

    from tpred.extract import LoadOptions

    where = f"{zoo_folder(run) / run.config.data.models}, model {model!r}"
    options = asdict(LoadOptions.from_row(_model_row(run, model), where=where))
    options.pop("trust")
    return options


def load_network(spec: str, **options: Any) -> Any:
    """The pre-trained model of a spec (`tpred.extract.load_model`, on the CPU), loaded with
    `options` (`model_options`: the zoo's pretrained / layer / image size / seed).

    Raises:
        ValueError: an unknown spec prefix, or the loader's own errors.
    """
    import tpred.zoo.hub  # noqa: F401  (registers digits: in tpred.extract)
    from tpred.extract import load_model

    return load_model(spec, device="cpu", **options)


def load_target(source: str, name: str) -> Target:
    """A data source with a test split, and its measured metadata row (id `name`).

    A `digits:` source gives the zoo's full row (domain, division, ...); any other source the
    row `tpred.extract` measures (classes, sizes, label names).

    Raises:
        ValueError: the source's errors (`tpred.extract.open_source`), or no test split.
    """
    data, metadata = measure_source(source, name)
    if data.test is None:
        raise ValueError(f"data source {source!r} has no test split (an image folder needs "
                         f"train/ and test/; a table a split column)")
    return Target(data, metadata, source)


def measure_source(source: str, name: str) -> tuple[Any, dict[str, Any]]:
    """A data source (`tpred.extract.open_source`) and its measured `datasets.csv` row, id
    `name`: a `digits:` source's full row from the zoo (domain, division, ...), any other the
    `SOURCE_COLUMNS` `tpred.extract` measures (`test_size` left out without a test split).

    Raises:
        ValueError: the source's errors.
    """
    import tpred.zoo.hub as hub
    from tpred.extract import open_source

    data = open_source(source, name=name)
    if source.startswith(DIGITS):
        return data, {**hub.target_data(source).metadata, "dataset": name}
    described = data.describe()
    row = {k: described[k] for k in SOURCE_COLUMNS}
    if row.get("test_size") == "":
        row.pop("test_size")
    return data, row


def model_inputs(model: Any, split: Any) -> Batchable:
    """Every item of a `tpred.extract` split through the model's own preprocessing, collated.

    Shapes: -> [N, ...] (or a mapping of [N, ...] tensors).
    """
    return model.collate([model.transform(split.item(i)) for i in range(len(split))])


def rank(run, dataset: str, target: Target, *, method: str | None = None,
         datasets: str | Path | None = None, scores: str | Path | None = None) -> pd.DataFrame:
    """Every model of the run ranked for `dataset`, best first.

    A dataset of the run: its recorded pairs at their accuracy, the others predicted
    (`Run.recommend`). A new dataset: its metadata row (from the `datasets` CSV, else measured
    from the data) and any `scores` go through the run inductively (`tpred.load(...).predict`).

    Returns:
        Columns `rank, model, predicted, std, known`.

    Raises:
        ValueError: `datasets` for a dataset of the run, or the run's input errors.
    """
    if dataset in run.zoo.dataset_ids:
        if datasets is not None:
            raise ValueError(f"dataset {dataset!r} is already in the run's zoo; --datasets is "
                             f"only for a new dataset")
        return run.recommend(dataset, k=0, scores=scores, method=method)
    if datasets is not None:
        return run.recommend(dataset, k=0, datasets=datasets, scores=scores, method=method)
    needed = run.config.dataset_features.columns
    if missing := [c for c in needed if c not in target.metadata]:
        raise ValueError(f"new dataset {dataset!r}: the run's dataset features need column(s) "
                         f"{missing}, which cannot be measured from the data source "
                         f"{target.source!r} (measured: {sorted(target.metadata)}); give the "
                         f"dataset's row with --datasets CSV")
    return run.recommend(pd.Series(target.metadata), k=0, scores=scores, method=method)


@dataclass(eq=False)
class RankedTune:
    """What `tune_from_run` did: the ranking, the choices and the result."""

    dataset: str
    ranking: pd.DataFrame
    student: str
    teachers: list[str]
    specs: dict[str, str]
    target: Target
    result: TuneResult
    seconds: float


def tune_from_run(run, dataset: str, *, data: str | None = None, num_teachers: int = 3,
                  student: str = "top1", cfg: TuneConfig | None = None,
                  method: str | None = None, datasets: str | Path | None = None,
                  scores: str | Path | None = None, progress: bool = False) -> RankedTune:
    """Rank the run's models for `dataset`, then tune the student with the top-K teachers.

    Args:
        run: a loaded run (`tpred.load`).
        dataset: a dataset id of the run, or a new one (then `data` is required).
        data: the data source (default for a digits-zoo run: `digits:<dataset>`).
        num_teachers: K, the teachers of B-Tuning (the top-K of the ranking).
        student: a model id of the run, or `top1` (the best of the ranking).
        cfg: the tuning settings (`cfg.method`; default `TuneConfig()`).
        method: the run's predictor that ranks (default gnn).
        datasets, scores: a new dataset's metadata row and scores (CSV), as `tpred.predict`.

    Raises:
        ValueError: an unknown dataset without data, K outside 1..number of models, an unknown
            student, a student that cannot be loaded or has no detectable head, no usable
            teacher, or bad data.
    """
    cfg = TuneConfig() if cfg is None else cfg
    start = time.perf_counter()
    num_models = run.zoo.num_models
    if not 1 <= num_teachers <= num_models:
        raise ValueError(f"--teachers K={num_teachers}: K must be between 1 and the number of "
                         f"models of the run's zoo ({num_models})")
    if student != "top1" and student not in run.zoo.model_ids:
        raise ValueError(f"--student {student!r} is neither 'top1' nor a model of the run's zoo "
                         f"{list(run.zoo.model_ids)}")
    folder = zoo_folder(run)
    if data is None:
        from tpred.zoo.hub import is_digits_zoo

        if dataset not in run.zoo.dataset_ids:
            raise ValueError(f"dataset {dataset!r} is not in the run's zoo ({run.zoo.num_datasets} "
                             f"datasets, e.g. {list(run.zoo.dataset_ids[:3])}); give its data "
                             f"with --data SOURCE")
        if not is_digits_zoo(folder):
            raise ValueError(f"dataset {dataset!r}: the run's zoo {folder} is not a digits zoo, "
                             f"so its images cannot be re-created; give them with --data SOURCE")
        data = _digits_ref(folder, dataset)
    target = load_target(data, dataset)
    ranking = rank(run, dataset, target, method=method, datasets=datasets, scores=scores)
    chosen = ranking["model"].iloc[0] if student == "top1" else student
    teachers = list(ranking["model"].iloc[:num_teachers])
    specs = {m: model_spec(run, m) for m in dict.fromkeys([chosen, *teachers])}
    net = load_network(specs[chosen], **model_options(run, chosen))
    train, test = target.data.train, target.data.test
    tune_data = TuneData(model_inputs(net, train), train.labels, model_inputs(net, test),
                         test.labels)
    sources = [(m, _loader(specs[m], train, model_options(run, m))) for m in teachers]
    result = tune(net, tune_data, cfg, teachers=sources, name=chosen, progress=progress)
    return RankedTune(dataset, ranking, chosen, teachers, specs, target, result,
                      time.perf_counter() - start)


def _loader(spec: str, split: Any, options: dict[str, Any]):
    """A teacher source: loads the model (with `options`) and prepares its own inputs of
    `split`."""

    def load() -> tuple[Any, Batchable]:
        model = load_network(spec, **options)
        return model, model_inputs(model, split)

    return load


# --------------------------------------------------------------------------------- outputs
def report(done: RankedTune, cfg: TuneConfig) -> dict:
    """The `tune.json` payload."""
    res, ranking = done.result, done.ranking.set_index("model")

    def entry(model: str) -> dict:
        row = ranking.loc[model]
        return {"model": model, "spec": done.specs.get(model), "rank": int(row["rank"]),
                "predicted": float(row["predicted"]),
                "std": None if pd.isna(row["std"]) else float(row["std"]),
                "known": bool(row["known"])}

    teachers = []
    if res.teachers is not None:
        fitted = dict(zip(res.teachers.names, zip(res.teachers.scores, res.teachers.pi,
                                                  strict=True), strict=True))
        for model in done.teachers:
            score, pi = fitted.get(model, (None, 0.0))
            teachers.append({**entry(model), "logme": None if score is None else float(score),
                             "pi": float(pi)})
    return {
        "dataset": done.dataset, "data": done.target.source, "method": cfg.method,
        "student": {**entry(done.student), "logme": res.student_logme},
        "teachers": teachers,
        "skipped_teachers": [] if res.teachers is None else [
            {"model": m, "reason": r} for m, r in res.teachers.skipped],
        "classes": [done.target.classes[int(c)] for c in res.classes],
        "train_size": len(done.target.data.train), "test_size": len(done.target.data.test),
        "test_accuracy": res.test_accuracy,
        "curve": res.curve,
        "seconds": {"tune": res.seconds, "total": done.seconds},
        "config": asdict(cfg),
        "ranking": [{"rank": int(r["rank"]), "model": r["model"],
                     "predicted": float(r["predicted"]),
                     "std": None if pd.isna(r["std"]) else float(r["std"]),
                     "known": bool(r["known"])} for _, r in done.ranking.iterrows()],
    }


def write_outputs(done: RankedTune, cfg: TuneConfig, out: str | Path) -> dict[str, Path]:
    """Write `student.safetensors`, `tune.json` and `curve.png` into `out`."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = report(done, cfg)
    state = tuned_state(done.result.student)
    paths = {"weights": out / WEIGHTS_NAME, "report": out / REPORT_NAME, "plot": out / PLOT_NAME}
    save_file(state, paths["weights"], metadata={
        "student": done.student, "spec": done.specs[done.student], "method": cfg.method,
        "dataset": done.dataset, "classes": json.dumps(payload["classes"])})
    paths["report"].write_text(json.dumps(payload, indent=1) + "\n")
    plot_curve(done.result.curve, paths["plot"],
               title=f"{cfg.method}: {done.student} on {done.dataset}")
    return paths


def tuned_state(student: Any) -> dict:
    """The tuned weights: `backbone.<key>` for every entry of the network's own state dict
    (the unused source head included, so that it loads into the spec's network as is) and
    `head.weight`, `head.bias` for the new head."""
    net = student.backbone.net if isinstance(student.backbone, LoadedBackbone) \
        else student.backbone
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    state |= {f"head.{k}": v for k, v in student.head.state_dict().items()}
    return {k: v.detach().contiguous() for k, v in state.items()}


def plot_curve(curve: Sequence[dict], path: Path, *, title: str) -> None:
    """Learning curve: train (batch) and test accuracy, and the loss, against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(list(curve))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(frame["epoch"], frame["train_accuracy"], "o-", label="train accuracy (batches)")
    ax.plot(frame["epoch"], frame["test_accuracy"], "s-", label="test accuracy")
    ax.set_xlabel("epoch (passes over the training images)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    loss_ax = ax.twinx()
    loss_ax.plot(frame["epoch"], frame["loss"], "--", color="grey", label="loss")
    loss_ax.set_ylabel("loss")
    lines = ax.get_legend_handles_labels()
    more = loss_ax.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="center right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
