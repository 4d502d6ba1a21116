"""Leakage rule 2 with blank metadata: a held-out node's metadata never reaches the imputer's
(or the scaler's) statistics, for every predictor with node features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tpred.config import GNNConfig, ProtocolConfig, TextConfig, TrainConfig
from tpred.data.zoo import Zoo
from tpred.evaluation.protocols import make_splits
from tpred.models import make_predictor
from tpred.testing import TOY_DATASET_FEATURES, TOY_MODEL_FEATURES, toy_zoo

CFG = TrainConfig(model_features=TOY_MODEL_FEATURES, dataset_features=TOY_DATASET_FEATURES,
                  text=TextConfig(encoder="hash", cache_dir=None),
                  gnn=GNNConfig(hidden_channels=8, heads=1, max_epochs=5, patience=2,
                                num_threads=1),
                  protocol=ProtocolConfig(num_folds=3))
NUMERIC = list(TOY_DATASET_FEATURES.numeric)


def _blank(zoo: Zoo, share: float, seed: int) -> pd.DataFrame:
    """The zoo's dataset metadata with `share` of the numeric and categorical cells blank."""
    rng = np.random.default_rng(seed)
    datasets = zoo.datasets.copy().astype({c: np.float64 for c in NUMERIC})
    for col in NUMERIC + ["domain"]:
        datasets.loc[rng.random(len(datasets)) < share, col] = np.nan
    return datasets


def _featurizer(predictor, name: str):
    inputs = {"lr": "dataset_inputs_", "knn": "dataset_inputs_", "gnn": "dataset_features_"}
    return getattr(predictor, inputs[name]).featurizer_


@pytest.fixture(scope="module")
def setting():
    zoo = toy_zoo(num_models=6, num_datasets=18, seed=5)
    split = make_splits("cold-dataset", zoo, 0, CFG.protocol)[0]
    held = list(split.context["held_out"])
    datasets = _blank(zoo, 0.3, seed=1)
    clean = Zoo.from_frames(zoo.models, datasets, zoo.records, zoo.scores)
    poisoned_meta = datasets.copy()
    poisoned_meta.loc[held, NUMERIC] = 1e9  # a held-out node's values: huge, and never blank
    poisoned = Zoo.from_frames(zoo.models, poisoned_meta, zoo.records, zoo.scores)
    return clean, poisoned, split, held


@pytest.mark.parametrize("name", ["lr", "knn", "gnn"])
def test_imputer_statistics_are_the_median_of_training_nodes_only(setting, name):
    clean, poisoned, split, held = setting
    train_ids = pd.unique(split.train["dataset"])
    assert not set(train_ids) & set(held)
    for zoo in (clean, poisoned):
        predictor = make_predictor(name, CFG, 0).fit(zoo, split.train)
        featurizer = _featurizer(predictor, name)
        imputer = featurizer.column_transformer_.named_transformers_["num"]["impute"]
        expected = np.nanmedian(zoo.datasets.loc[train_ids, NUMERIC].to_numpy(np.float64), 0)
        np.testing.assert_allclose(imputer.statistics_, expected)
        scaler = featurizer.column_transformer_.named_transformers_["num"]["scale"]
        assert np.all(scaler.mean_ < np.log1p(1e9) / 2)  # no poisoned value in the scaling
    # the check has teeth: training cells are blank in every numeric column, and the held-out
    # values would move both the median and the scaler if they were seen
    assert clean.datasets.loc[train_ids, NUMERIC].isna().any().all()


@pytest.mark.parametrize("name", ["lr", "knn"])
def test_training_pairs_do_not_move_when_held_out_metadata_changes(setting, name):
    clean, poisoned, split, _ = setting
    a = make_predictor(name, CFG, 0).fit(clean, split.train).predict(split.train)
    b = make_predictor(name, CFG, 0).fit(poisoned, split.train).predict(split.train)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
