"""The config layer: every key type-checked from YAML and `--set` alike, YAML errors, paths."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import pytest

from tpred.config import (
    GNNConfig,
    NodeFeatureConfig,
    PositiveInt,
    Range,
    TrainConfig,
    ZooConfig,
    check_fields,
)


@pytest.mark.parametrize("assignment, message", [
    ("data.percent=yes_please", r"data.percent must be true or false, got 'yes_please'"),
    ("protocol.num_folds=2.5", r"protocol.num_folds must be an integer >= 2, got 2.5 \(float\)"),
    ("protocol.num_folds=1", r"protocol.num_folds must be an integer >= 2, got 1 \(int\)"),
    ("gnn.max_epochs=-5", r"gnn.max_epochs must be an integer >= 1, got -5 \(int\)"),
    ("gnn.use_scores=1", r"gnn.use_scores must be true or false, got 1 \(int\)"),
    ("gnn.hidden_channels=true", r"gnn.hidden_channels must be an integer >= 1, got True"),
    ("gnn.dropout=1", r"gnn.dropout must be a finite number in \[0, 1\), got 1.0"),
    ("gnn.lr=.nan", r"gnn.lr must be a finite number > 0, got nan"),
    ("gnn.lr=fast", r"gnn.lr must be a finite number > 0, got 'fast'"),
    ("gnn.num_threads=0", r"gnn.num_threads must be an integer >= 1 or null, got 0"),
    ("gnn.conv=gcn", r"gnn.conv must be one of \['gat', 'gatv2', 'sage'\], got 'gcn'"),
    ("data.root=", r"data.root must be a non-empty path, got None"),
    ("data.root=' '", r"data.root must be a non-empty path, got ' '"),
    ("text.cache_dir=''", r"text.cache_dir must be a non-empty path or null, got ''"),
    ("data.duplicates=avg", r"data.duplicates must be one of \['error', 'mean', 'max', 'last'\]"),
    ("model_features.impute=zero", r"model_features.impute must be one of \['median', 'error'\]"),
    ("seeds=[0, 1.5]", r"seeds\[1\] must be an integer, got 1.5"),
    ("protocols=[nope]", r"protocols\[0\] must be one of \['paper', 'random'"),
    ("protocol.random_fractions=[0.5, 1.5]",
     r"protocol.random_fractions\[1\] must be a finite number in \(0, 1\), got 1.5"),
    ("score_metrics=[logme, '']", r"score_metrics\[1\] must be a non-empty string, got ''"),
    ("name=3", r"name must be a non-empty string, got 3 \(int\)"),
    ("data=3", r"unknown config key 'data'"),
])
def test_set_values_are_type_checked(assignment, message):
    with pytest.raises(ValueError, match=rf"--set {assignment.split('=')[0]}=.*: {message}"
                       if not message.startswith("unknown") else message):
        TrainConfig().override(assignment)


def test_yaml_values_are_checked_the_same_way(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  percent: yes_please\n")
    with pytest.raises(ValueError, match=r"c.yaml: data.percent must be true or false, got "
                                         r"'yes_please'"):
        TrainConfig.from_yaml(path)
    path.write_text("gnn:\n  max_epochs: -5\n")
    with pytest.raises(ValueError, match=r"c.yaml: gnn.max_epochs must be an integer >= 1"):
        TrainConfig.from_yaml(path)
    path.write_text("gnn: 3\n")
    with pytest.raises(ValueError, match=r"c.yaml: gnn must be a mapping of GNNConfig keys, "
                                         r"got 3 \(int\)"):
        TrainConfig.from_yaml(path)


def test_accepted_values_are_normalised():
    cfg = TrainConfig().override("gnn.lr=1e-3").override("seeds=4").override("gnn.dropout=0")
    assert cfg.gnn.lr == 0.001 and cfg.seeds == (4,) and cfg.gnn.dropout == 0.0
    assert isinstance(cfg.gnn.dropout, float)
    assert TrainConfig(seeds=[1, 2]).seeds == (1, 2)  # Python lists become tuples
    assert TrainConfig().override("gnn.num_threads=null").gnn.num_threads is None


def test_python_construction_is_checked_too():
    with pytest.raises(ValueError, match=r"GNNConfig.hidden_channels must be an integer >= 1, "
                                         r"got 0"):
        GNNConfig(hidden_channels=0)
    with pytest.raises(ValueError, match=r"ZooConfig.percent must be true or false, got 'no'"):
        ZooConfig(percent="no")
    with pytest.raises(ValueError, match=r"NodeFeatureConfig.log must be a subset of numeric"):
        NodeFeatureConfig(log=("x",))


def test_fields_added_later_are_checked_from_their_hints():
    @dataclasses.dataclass(frozen=True)
    class Extra:
        batch_size: PositiveInt | None = None
        weight: Annotated[float, Range(0, 1)] = 0.5
        flags: tuple[bool, ...] = ()

        def __post_init__(self) -> None:
            check_fields(self)

    assert Extra(batch_size=3, weight=1, flags=[True]).flags == (True,)
    with pytest.raises(ValueError, match=r"Extra.batch_size must be an integer >= 1 or null"):
        Extra(batch_size=-1)
    with pytest.raises(ValueError, match=r"Extra.weight must be a finite number in \[0, 1\], "
                                         r"got 2"):
        Extra(weight=2)
    with pytest.raises(ValueError, match=r"Extra.flags\[0\] must be true or false, got 'yes'"):
        Extra(flags=("yes",))


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ngnn:\n  lr: [0.1, 0.2\nseeds: [0]\n")
    with pytest.raises(ValueError, match=r"bad.yaml, line 4, column 6: not valid YAML"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ValueError, match=r"--set seeds=\[0: the value is not valid YAML"):
        TrainConfig().override("seeds=[0")


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "local").mkdir()
    path = folder / "c.yaml"
    path.write_text("data:\n  root: ../zoo\noutput_dir: out\ntext:\n  cache_dir: /abs/cache\n"
                    "  encoder: local\n")
    cfg = TrainConfig.from_yaml(path)
    assert cfg.data.root == str(tmp_path / "zoo")
    assert cfg.output_dir == str(folder / "out")
    assert cfg.text.cache_dir == "/abs/cache"
    assert cfg.text.encoder == str(folder / "local")  # an existing folder; else a hub name
    assert TrainConfig.from_yaml(path).text.encoder != "local"
    path.write_text("text:\n  encoder: bert-base-uncased\n")
    assert TrainConfig.from_yaml(path).text.encoder == "bert-base-uncased"
    # not written in the file: defaults stay relative (to the working directory)
    assert TrainConfig.from_yaml(path).output_dir == "runs"


def test_relative_paths_given_with_set_are_relative_to_the_working_directory(tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig().override("data.root=zoo").override("output_dir=../runs")
    assert cfg.data.root == str(tmp_path / "zoo")
    assert cfg.output_dir == os.path.normpath(tmp_path / ".." / "runs")


def test_shipped_configs_point_at_existing_folders():
    root = Path(__file__).resolve().parent.parent
    cfg = TrainConfig.from_yaml(root / "configs" / "default.yaml")
    assert Path(cfg.data.root) == root / "data" / "digits-zoo"
    assert Path(cfg.output_dir) == root / "runs"


def test_every_key_has_a_checked_type():
    """No hint the checker lets through unchecked (an `Any`, an unknown class)."""
    import typing

    from tpred.config import _coerce, _dataclass_of, _Mismatch

    def leaves(cls):
        for name, hint in typing.get_type_hints(cls, include_extras=True).items():
            sub = _dataclass_of(hint)
            yield from leaves(sub) if sub is not None else [(f"{cls.__name__}.{name}", hint)]

    for key, hint in leaves(TrainConfig):
        with pytest.raises(_Mismatch):
            _coerce(hint, object())
        assert key
