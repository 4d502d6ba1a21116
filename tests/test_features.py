"""NodeFeaturizer: hand-computed scaling, one-hot with unseen categories, text, pickling, errors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from tpred.config import NodeFeatureConfig
from tpred.errors import NotFittedError
from tpred.features import NodeFeaturizer, TextEmbedder
from tpred.testing import TOY_DATASET_FEATURES, HashEncoder, toy_zoo

CONFIG = NodeFeatureConfig(numeric=("size", "score"), log=("size",), categorical=("domain",),
                           text=("labels",))


@pytest.fixture
def frame() -> pd.DataFrame:
    """3 datasets: log1p(size) = 0, 1, 2 exactly; score = 1, 2, 3."""
    return pd.DataFrame({"size": [0.0, math.e - 1, math.e**2 - 1], "score": [1, 2, 3],
                         "domain": ["photo", "sketch", "photo"],
                         "labels": ["cat, dog", "car, tree", "cat, dog"],
                         "unused": ["x", "y", "z"]},
                        index=pd.Index(["d0", "d1", "d2"], name="dataset"))


def test_log_then_standardise_by_hand(frame):
    feats = NodeFeaturizer(CONFIG, HashEncoder(dim=4)).fit(frame)
    X = feats.transform(frame)
    assert X.shape == (3, 2 + 2 + 4) and X.dtype == np.float32
    z = np.array([-1, 0, 1]) / math.sqrt(2 / 3)  # [0, 1, 2] and [1, 2, 3]: mean 1/2, std √(2/3)
    np.testing.assert_allclose(X[:, 0], z, rtol=1e-6)
    np.testing.assert_allclose(X[:, 1], z, rtol=1e-6)
    np.testing.assert_array_equal(X[:, 2:4], [[1, 0], [0, 1], [1, 0]])
    emb = HashEncoder(dim=4)(["cat, dog", "car, tree", "cat, dog"]).numpy()
    np.testing.assert_array_equal(X[:, 4:], emb)  # the whole label list is one text
    assert feats.get_feature_names_out().tolist() == [
        "num__size", "num__score", "cat__domain_photo", "cat__domain_sketch",
        "text_labels__dim0", "text_labels__dim1", "text_labels__dim2", "text_labels__dim3"]


def test_unseen_category_becomes_zeros(frame):
    feats = NodeFeaturizer(NodeFeatureConfig(categorical=("domain",))).fit(frame)
    new = frame.assign(domain=["quickdraw", "sketch", "photo"])
    np.testing.assert_array_equal(feats.transform(new), [[0, 0], [0, 1], [1, 0]])


def test_fit_uses_only_the_rows_given(frame):
    cfg = NodeFeatureConfig(numeric=("score",), categorical=("domain",))
    feats = NodeFeaturizer(cfg).fit(frame.iloc[:2])  # score 1, 2: mean 1.5, std 0.5
    X = feats.transform(frame)
    np.testing.assert_allclose(X[:, 0], [-1, 1, 3])
    np.testing.assert_array_equal(X[:, 1:], [[1, 0], [0, 1], [1, 0]])
    full = NodeFeaturizer(cfg).fit(frame).transform(frame)
    assert not np.allclose(full[:, 0], X[:, 0])


def test_pickle_round_trip_gives_identical_output(frame):
    feats = NodeFeaturizer(CONFIG, HashEncoder(dim=4)).fit(frame.iloc[:2])
    copy = pickle.loads(pickle.dumps(feats))
    new = frame.assign(labels=["bird", "fish", "cat, dog"], domain=["a", "photo", "sketch"])
    np.testing.assert_array_equal(copy.transform(new), feats.transform(new))


def test_zero_columns_give_an_empty_matrix(frame):
    feats = NodeFeaturizer(NodeFeatureConfig()).fit(frame)
    assert feats.transform(frame).shape == (3, 0)
    assert feats.get_feature_names_out().shape == (0,)


def test_toy_zoo_text_standardisation_and_clone():
    zoo = toy_zoo()
    feats = NodeFeaturizer(TOY_DATASET_FEATURES, HashEncoder(), text_scaling="standard")
    X = feats.fit(zoo.datasets).transform(zoo.datasets)
    assert X.shape == (24, 2 + 3 + 8 + 8) and np.isfinite(X).all()
    labels = X[:, 5:13]
    np.testing.assert_allclose(labels.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(labels.std(0), 1, atol=1e-4)
    assert not hasattr(clone(feats), "n_features_out_")


def test_column_both_numeric_and_categorical(frame):
    cfg = NodeFeatureConfig(numeric=("score",), categorical=("score",))
    X = NodeFeaturizer(cfg).fit(frame).transform(frame)
    np.testing.assert_array_equal(X[:, 1:], np.eye(3))


def test_missing_column_names_the_columns_found(frame):
    with pytest.raises(ValueError, match=r"column\(s\) \['labels'\] not found; columns found: "
                                         r"\['size', 'score', 'domain', 'unused'\]"):
        NodeFeaturizer(CONFIG, HashEncoder()).fit(frame.drop(columns="labels"))
    feats = NodeFeaturizer(CONFIG, HashEncoder()).fit(frame)
    with pytest.raises(ValueError, match=r"\['domain'\] not found"):
        feats.transform(frame.drop(columns="domain"))


@pytest.mark.parametrize("value", [3.0, 7])
def test_text_column_needs_text(frame, value):
    bad = frame.astype({"labels": object})
    bad.loc["d1", "labels"] = value
    with pytest.raises(ValueError, match=r"text column 'labels' must hold text \(or blanks\); "
                                         rf"row 'd1' has {value!r}"):
        NodeFeaturizer(CONFIG, HashEncoder()).fit(bad)


def test_numeric_and_categorical_errors(frame):
    with pytest.raises(ValueError, match=r"numeric column 'score' must hold finite numbers or "
                                         r"blanks; row 'd2' has 'big'"):
        NodeFeaturizer(CONFIG, HashEncoder()).fit(frame.assign(score=["1", "2", "big"]))
    with pytest.raises(ValueError, match=r"numeric column 'score' must hold finite numbers or "
                                         r"blanks; row 'd0' has inf"):
        NodeFeaturizer(CONFIG, HashEncoder()).fit(frame.assign(score=[np.inf, 2, 3]))
    with pytest.raises(ValueError, match=r"log-scaled column 'size' must be >= 0; row 'd0' has "
                                         r"-1.0"):
        NodeFeaturizer(CONFIG, HashEncoder()).fit(frame.assign(size=[-1.0, 1.0, 2.0]))


# ----------------------------------------------------------------------------- blank cells
def test_blank_number_is_the_median_of_the_fitted_rows_plus_an_indicator(frame):
    cfg = NodeFeatureConfig(numeric=("score", "size"))
    fit_rows = pd.DataFrame({"score": [1.0, np.nan, 4.0, 10.0], "size": [1.0, 2.0, 3.0, 4.0]},
                            index=["a", "b", "c", "d"])
    feats = NodeFeaturizer(cfg).fit(fit_rows)
    imputer = feats.column_transformer_.named_transformers_["num"]["impute"]
    np.testing.assert_allclose(imputer.statistics_, [4.0, 2.5])  # medians of the rows given
    assert feats.get_feature_names_out().tolist() == [
        "num__score", "num__size", "missing__missingindicator_score"]
    X = feats.transform(fit_rows)
    # score [1, 4, 4, 10]: mean 4.75, population variance 42.75 / 4
    np.testing.assert_allclose(X[:, 0], (np.array([1, 4, 4, 10]) - 4.75) / np.sqrt(10.6875),
                               rtol=1e-6)
    np.testing.assert_array_equal(X[:, 2], [0, 1, 0, 0])
    # a new row blank in `size` (complete in fit): the median, and no indicator for it
    new = pd.DataFrame({"score": ["NA"], "size": [None]}, index=["e"])
    Xn = feats.transform(new)
    np.testing.assert_allclose(Xn[0], [X[1, 0], 0.0, 1.0], atol=1e-6)  # size 2.5 is the mean


@pytest.mark.parametrize("token", ["", "NA", "n/a", "N/A", "null", "None", "nan", " na "])
def test_blank_tokens_are_missing(token):
    cfg = NodeFeatureConfig(numeric=("x",), categorical=("c",))
    rows = pd.DataFrame({"x": ["1", token, "3"], "c": ["a", token, "a"]}, index=["p", "q", "r"])
    X = NodeFeaturizer(cfg).fit(rows).transform(rows)
    np.testing.assert_allclose(X[:, 0], [-1.224745, 0, 1.224745], rtol=1e-5)  # [1, 2, 3]
    np.testing.assert_array_equal(X[:, 1:], [[0, 1, 0], [1, 0, 1], [0, 1, 0]])


def test_blank_category_is_its_own_category(frame):
    feats = NodeFeaturizer(NodeFeatureConfig(categorical=("domain",)))
    X = feats.fit(frame.assign(domain=["photo", None, "photo"])).transform(
        frame.assign(domain=[np.nan, "photo", "sketch"]))
    assert feats.get_feature_names_out().tolist() == ["cat__domain_missing",
                                                      "cat__domain_photo"]
    np.testing.assert_array_equal(X, [[1, 0], [0, 1], [0, 0]])  # unseen 'sketch': zeros


def test_blank_text_is_embedded_as_the_empty_text(frame):
    cfg = NodeFeatureConfig(text=("labels",))
    X = NodeFeaturizer(cfg, HashEncoder(dim=4)).fit(frame).transform(
        frame.assign(labels=["cat, dog", None, "  "]))
    expected = HashEncoder(dim=4)(["cat, dog", "", ""]).numpy()
    np.testing.assert_array_equal(X, expected)


def test_column_blank_in_every_fitted_row_keeps_its_features(frame):
    cfg = NodeFeatureConfig(numeric=("score", "size"))
    feats = NodeFeaturizer(cfg).fit(frame.assign(score=[np.nan] * 3))
    assert feats.n_features_out_ == 3  # score (as 0), size, and score's indicator
    X = feats.transform(frame)  # values where fit saw none: still the fitted transform
    assert X.shape == (3, 3) and np.isfinite(X).all()
    np.testing.assert_array_equal(X[:, 2], [0, 0, 0])


def test_complete_rows_get_no_indicator(frame):
    feats = NodeFeaturizer(CONFIG, HashEncoder(dim=4)).fit(frame)
    assert not [n for n in feats.get_feature_names_out() if "missing" in n]


@pytest.mark.parametrize("column, value", [("score", np.nan), ("domain", None),
                                           ("labels", "NA")])
def test_impute_error_refuses_blank_cells(frame, column, value):
    cfg = NodeFeatureConfig(numeric=("size", "score"), categorical=("domain",),
                            text=("labels",), impute="error")
    bad = frame.astype({column: object})
    bad.loc["d1", column] = value
    with pytest.raises(ValueError, match=rf"column '{column}' has a blank value in row 'd1' "
                                         rf"\({value!r}\) and impute is 'error'"):
        NodeFeaturizer(cfg, HashEncoder()).fit(bad)


def test_usage_errors(frame):
    with pytest.raises(ValueError, match=r"text column 'labels' needs a text encoder"):
        NodeFeaturizer(CONFIG).fit(frame)
    with pytest.raises(ValueError, match=r"text_scaling must be one of \('none', 'standard'\), "
                                         r"got 'l2'"):
        NodeFeaturizer(CONFIG, HashEncoder(), text_scaling="l2").fit(frame)
    with pytest.raises(NotFittedError, match=r"NodeFeaturizer is not fitted"):
        NodeFeaturizer(CONFIG).transform(frame)
    with pytest.raises(NotFittedError, match=r"NodeFeaturizer is not fitted"):
        NodeFeaturizer(CONFIG).get_feature_names_out()
    with pytest.raises(TypeError, match=r"expects a pandas DataFrame of metadata, got ndarray"):
        NodeFeaturizer(CONFIG).fit(frame.to_numpy())
    with pytest.raises(NotFittedError, match=r"TextEmbedder is not fitted"):
        TextEmbedder(HashEncoder()).transform(np.array([["a"]], dtype=object))


def test_text_embedder_encodes_each_distinct_text_once():
    calls = []

    def encoder(texts):
        calls.append(list(texts))
        return HashEncoder(dim=3)(texts)

    out = TextEmbedder(encoder, column="labels").fit_transform(np.array([["a"], ["b"], ["a"]]))
    assert calls == [["a", "b"]]
    np.testing.assert_array_equal(out, HashEncoder(dim=3)(["a", "b", "a"]).numpy())


def test_a_categorical_column_blank_in_every_fitted_row_is_one_missing_category():
    import warnings

    frame = pd.DataFrame({"domain": [np.nan, np.nan, np.nan]}, index=["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scikit-learn "Skipping features" warning
        feats = NodeFeaturizer(NodeFeatureConfig(categorical=("domain",))).fit(frame)
    assert feats.get_feature_names_out().tolist() == ["cat__domain_missing"]
    np.testing.assert_array_equal(feats.transform(frame), np.ones((3, 1)))


def test_text_weight_multiplies_the_text_columns_only(frame):
    """`text_weight` (sklearn's `transformer_weights`) scales each text column's embedding and
    leaves the numeric and one-hot features as they are; 1 is the plain featurizer."""
    from dataclasses import replace

    plain = NodeFeaturizer(CONFIG, HashEncoder(dim=4)).fit(frame).transform(frame)
    heavy = NodeFeaturizer(replace(CONFIG, text_weight=2.5), HashEncoder(dim=4)).fit(
        frame).transform(frame)
    text = slice(plain.shape[1] - 4, None)                     # labels' 4 dims come last
    np.testing.assert_array_equal(heavy[:, :text.start], plain[:, :text.start])
    np.testing.assert_allclose(heavy[:, text], 2.5 * plain[:, text], rtol=1e-6)
    np.testing.assert_allclose(plain[:, text], HashEncoder(dim=4)(list(frame["labels"])).numpy())
    with pytest.raises(ValueError, match="text_weight"):
        NodeFeatureConfig(text=("labels",), text_weight=0.0)


def test_an_old_pickled_config_without_text_weight_reads_as_weight_1():
    state = {k: v for k, v in CONFIG.__dict__.items() if k != "text_weight"}
    old = NodeFeatureConfig.__new__(NodeFeatureConfig)
    old.__setstate__(state)
    assert old.text_weight == 1.0 and old == CONFIG
    assert pickle.loads(pickle.dumps(CONFIG)) == CONFIG
