"""The digits zoo builder: `--small` outputs (schema, determinism, completeness), its parts
(domains, networks, targets, heads) and every error it raises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tpred.config import ZooConfig
from tpred.scores import METRICS
from tpred.zoo.__main__ import main
from tpred.zoo.build import SourceSpec, ZooPlan, build_zoo, default_plan, fit_head
from tpred.zoo.domains import DOMAINS, apply_domain
from tpred.zoo.networks import count_flops, count_parameters, make_network
from tpred.zoo.report import KEEP_MARKER, informativeness, interaction
from tpred.zoo.targets import CLASS_NAMES, label_divisions, make_targets

CSVS = ("models.csv", "datasets.csv", "records.csv", "scores.csv", "scores.errors.csv")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One `--small` build through the CLI (seed 0)."""
    out = tmp_path_factory.mktemp("small")
    assert main(["build", "--out", str(out), "--small", "--seed", "0", "--no-progress"]) == 0
    return out


# ------------------------------------------------------------------------- built outputs
def test_small_build_writes_the_documented_schema(small):
    models = pd.read_csv(small / "models.csv")
    assert list(models.columns) == [
        "model", "architecture_family", "pretrain_dataset", "source_domain", "source_classes",
        "num_source_classes", "epochs", "num_parameters", "flops", "feature_dim",
        "source_accuracy"]
    for col in ("num_source_classes", "epochs", "num_parameters", "flops", "feature_dim"):
        assert models[col].dtype == np.int64, col
    assert models["source_accuracy"].between(0, 1).all()
    assert set(models["architecture_family"]) == {"mlp", "cnn", "resnet"}
    datasets = pd.read_csv(small / "datasets.csv")
    assert list(datasets.columns) == ["dataset", "domain", "num_classes", "samples_per_class",
                                      "division", "labels", "train_size", "test_size"]
    assert len(datasets) == 16 and datasets["dataset"].is_unique
    labels = datasets["labels"].str.split(", ")
    assert (labels.str.len() == datasets["num_classes"]).all()
    assert all(set(names) <= set(CLASS_NAMES) for names in labels)
    assert (datasets["train_size"] == datasets["num_classes"]
            * datasets["samples_per_class"]).all()
    records = pd.read_csv(small / "records.csv")
    assert list(records.columns) == ["model", "dataset", "accuracy"]
    assert records["accuracy"].dtype == np.float64
    scores = pd.read_csv(small / "scores.csv")
    assert list(scores.columns) == ["model", "dataset", "metric", "value"]
    assert scores["value"].dtype == np.float64 and np.isfinite(scores["value"]).all()
    errors = pd.read_csv(small / "scores.errors.csv")
    assert list(errors.columns) == ["model", "dataset", "metric", "kind", "reason"]
    assert set(errors["kind"]) <= {"error", "note"}


def test_records_are_the_full_matrix_of_accuracies_in_0_1(small):
    models = pd.read_csv(small / "models.csv")
    datasets = pd.read_csv(small / "datasets.csv")
    records = pd.read_csv(small / "records.csv")
    assert len(records) == len(models) * len(datasets)
    assert not records.duplicated(["model", "dataset"]).any()
    assert set(records["model"]) == set(models["model"])
    assert set(records["dataset"]) == set(datasets["dataset"])
    assert records["accuracy"].between(0, 1).all()
    assert records["accuracy"].nunique() > 10  # real learning, not a constant


def test_every_pair_and_metric_is_scored_or_listed_as_an_error_with_a_reason(small):
    records = pd.read_csv(small / "records.csv")
    scores = pd.read_csv(small / "scores.csv")
    errors = pd.read_csv(small / "scores.errors.csv", keep_default_na=False)
    key = ["model", "dataset", "metric"]
    expected = {(m, d, metric) for m, d in zip(records["model"], records["dataset"], strict=True)
                for metric in METRICS}
    scored = set(map(tuple, scores[key].to_numpy()))
    failed = set(map(tuple, errors.loc[errors["kind"] == "error", key].to_numpy()))
    noted = set(map(tuple, errors.loc[errors["kind"] == "note", key].to_numpy()))
    assert scored | failed == expected
    assert not scored & failed
    assert noted <= scored  # a flagged value is kept
    assert (errors["reason"].str.len() > 0).all()


def test_small_build_loads_with_load_zoo(small):
    from tpred.data import load_zoo

    zoo = load_zoo(ZooConfig(root=str(small), scores="scores.csv"))
    assert zoo.num_models == 4 and zoo.num_datasets == 16
    assert len(zoo.records) == 64
    assert set(zoo.score_metrics) <= set(METRICS)
    assert zoo.records_matrix().notna().all().all()


def test_feature_files_hold_the_train_part_in_the_tpred_score_layout(small):
    datasets = pd.read_csv(small / "datasets.csv").set_index("dataset")
    models = pd.read_csv(small / "models.csv").set_index("model")
    model, dataset = models.index[1], datasets.index[5]
    with np.load(small / "features" / model / f"{dataset}.npz") as npz:
        features, labels, probs = npz["features"], npz["labels"], npz["probs"]
    n = datasets.loc[dataset, "train_size"]
    assert features.shape == (n, models.loc[model, "feature_dim"])
    assert probs.shape == (n, models.loc[model, "num_source_classes"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    names = sorted(CLASS_NAMES[c] for c in np.unique(labels))
    assert names == sorted(datasets.loc[dataset, "labels"].split(", "))
    assert np.bincount(labels)[np.unique(labels)].tolist() == (
        [datasets.loc[dataset, "samples_per_class"]] * datasets.loc[dataset, "num_classes"])


def test_tpred_score_recomputes_the_scores_from_the_feature_files(small, tmp_path):
    from tpred.scores.table import score_directory

    recomputed = score_directory(small / "features", tmp_path / "again.csv", ["gbc", "sfda"],
                                 progress=False)
    built = pd.read_csv(small / "scores.csv")
    built = built[built["metric"].isin(["gbc", "sfda"])]
    merged = built.merge(recomputed, on=["model", "dataset", "metric"], suffixes=("", "_again"))
    assert len(merged) == len(built) == len(recomputed)
    np.testing.assert_allclose(merged["value_again"], merged["value"], rtol=1e-9)


def test_same_seed_gives_identical_csvs_and_another_seed_other_records(small, tmp_path):
    build_zoo(tmp_path / "again", seed=0, small=True, progress=False)
    for name in CSVS:
        assert (tmp_path / "again" / name).read_bytes() == (small / name).read_bytes(), name
    plan = default_plan(small=True)
    short = ZooPlan(sources=plan.sources[:2], domains=plan.domains, num_classes=(2,),
                    samples_per_class=(5,), divisions=("a",))
    one = build_zoo(tmp_path / "s0", seed=0, plan=short, metrics=["gbc"], progress=False,
                    write_readme=False)
    other = build_zoo(tmp_path / "s1", seed=1, plan=short, metrics=["gbc"], progress=False,
                      write_readme=False)
    assert not one.records["accuracy"].equals(other.records["accuracy"])


def test_readme_reports_the_build_and_keeps_text_below_the_marker(small, tmp_path):
    text = (small / "README.md").read_text()
    assert "Is the zoo informative?" in text and KEEP_MARKER in text
    out = tmp_path / "zoo"
    out.mkdir()
    readme = f"obsolete generated part\n{KEEP_MARKER}\n## Benchmark\nkept by hand\n"
    (out / "README.md").write_text(readme)
    plan = default_plan(small=True)
    short = ZooPlan(sources=plan.sources[:3], domains=("original",), num_classes=(2,),
                    samples_per_class=(5,), divisions=("a", "c"))
    build_zoo(out, plan=short, metrics=["gbc"], progress=False)
    text = (out / "README.md").read_text()
    assert text.endswith(f"{KEEP_MARKER}\n## Benchmark\nkept by hand\n")
    assert "obsolete generated part" not in text.split(KEEP_MARKER)[0]


def test_informativeness_of_a_hand_made_zoo():
    from tpred.zoo.build import ZooTables

    models = pd.DataFrame({"model": ["a", "b"], "source_domain": ["x", "y"],
                           "source_classes": ["zero, one", "zero, one"]})
    datasets = pd.DataFrame({"dataset": ["d1", "d2", "d3"], "domain": ["x", "y", "y"],
                             "labels": ["zero, one"] * 3})
    acc = {("a", "d1"): 0.9, ("a", "d2"): 0.5, ("a", "d3"): 0.7,
           ("b", "d1"): 0.6, ("b", "d2"): 0.8, ("b", "d3"): 0.8}
    records = pd.DataFrame([(m, d, a) for (m, d), a in acc.items()],
                           columns=["model", "dataset", "accuracy"])
    scores = records.rename(columns={"accuracy": "value"}).assign(metric="logme")
    info = informativeness(ZooTables(models, datasets, records, scores, pd.DataFrame()))
    assert info.overall_best == "b"  # mean 0.733 vs 0.7
    assert info.share_best_differs == pytest.approx(1 / 3)
    assert info.accuracy_median == pytest.approx(0.75)
    assert info.std_median == pytest.approx(np.std([0.9, 0.6], ddof=1))  # stds 0.21, 0.21, 0.07
    assert info.domain_match_mean == pytest.approx((0.9 + 0.8 + 0.8) / 3)
    assert info.domain_mismatch_mean == pytest.approx((0.5 + 0.7 + 0.6) / 3)
    assert info.domain_match_residual > 0
    assert np.isnan(info.logme_spearman)  # 2 models: too few for a per-dataset correlation
    resid = interaction(records.pivot(index="model", columns="dataset", values="accuracy"))
    np.testing.assert_allclose(resid.sum(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(resid.sum(axis=1), 0, atol=1e-12)


# ------------------------------------------------------------------------------- domains
def test_domains_keep_the_range_and_are_deterministic_per_seed():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, size=(6, 8, 8))
    assert len(DOMAINS) >= 5
    np.testing.assert_array_equal(apply_domain(images, "original", seed=0),
                                  images.astype(np.float32))
    np.testing.assert_allclose(apply_domain(images, "inverted", seed=0), 1 - images, atol=1e-6)
    for domain in DOMAINS:
        out = apply_domain(images, domain, seed=3)
        assert out.shape == images.shape and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 1
        np.testing.assert_array_equal(out, apply_domain(images, domain, seed=3))
    for domain in ("rotated", "noisy", "shifted"):
        assert not np.array_equal(apply_domain(images, domain, seed=3),
                                  apply_domain(images, domain, seed=4)), domain
    copy = images.copy()
    for domain in DOMAINS:
        apply_domain(images, domain, seed=0)
    np.testing.assert_array_equal(images, copy)  # input never mutated
    blurred = apply_domain(images, "blurred", seed=0)
    np.testing.assert_allclose(blurred.max(axis=(1, 2)), 1.0, atol=1e-6)  # contrast restored


def test_apply_domain_rejects_unknown_domains_and_bad_shapes():
    with pytest.raises(ValueError, match="unknown domain 'sepia'"):
        apply_domain(np.zeros((1, 8, 8)), "sepia", seed=0)
    with pytest.raises(ValueError, match=r"must be 3-D \[N, H, W\], got shape \(8, 8\)"):
        apply_domain(np.zeros((8, 8)), "original", seed=0)


# ------------------------------------------------------------------------------ networks
@pytest.mark.parametrize(("family", "size", "dim"), [("mlp", (8,), 8), ("mlp", (16, 4), 4),
                                                     ("cnn", (2, 3, 5), 5),
                                                     ("resnet", (4, 2), 4)])
def test_networks_split_into_features_and_head(family, size, dim):
    net = make_network(family, size, 3)
    x = torch.zeros(2, 1, 8, 8)
    assert net.family == family and net.feature_dim == dim
    assert net.features(x).shape == (2, dim) and net(x).shape == (2, 3)


def test_parameters_and_flops_of_an_mlp_are_counted_exactly():
    net = make_network("mlp", (8,), 3)
    assert count_parameters(net) == 64 * 8 + 8 + 8 * 3 + 3
    assert count_flops(net) == 2 * (64 * 8 + 8 * 3)  # a multiply-add counts 2; biases free


def test_make_network_rejects_unknown_families_and_sizes():
    with pytest.raises(ValueError, match="unknown family 'vit'"):
        make_network("vit", (8,), 3)
    with pytest.raises(ValueError, match=r"size \(8,\) does not fit family 'cnn'"):
        make_network("cnn", (8,), 3)


# ------------------------------------------------------------------------------- targets
def test_label_divisions_follow_domainnets_scheme():
    for n in (2, 4, 8):
        div = label_divisions(n, np.random.default_rng(n))
        a, b, c = (set(div[k]) for k in "abc")
        assert len(a) == len(b) == len(c) == n
        if 2 * n <= 10:
            assert not a & c
        assert len(b & a) >= n // 2 and len(b & c) >= n - n // 2


def test_make_targets_is_the_full_grid_with_shared_label_sets():
    targets = make_targets(["original", "noisy"], [2, 4], [5, 10], seed=0)
    assert len(targets) == 2 * 2 * 2 * 3
    assert len({t.dataset for t in targets}) == len(targets)
    by_task = {}
    for t in targets:
        by_task.setdefault((t.num_classes, t.division), set()).add(t.classes)
    assert all(len(v) == 1 for v in by_task.values())  # same labels in every domain and size
    t = targets[0]
    assert t.dataset == "original_2a_5" and t.labels == ", ".join(CLASS_NAMES[c]
                                                                   for c in t.classes)


def test_target_helpers_reject_bad_arguments():
    with pytest.raises(ValueError, match="num_classes must be in 2..10, got 11"):
        label_divisions(11, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"unknown division\(s\) \['d'\]"):
        make_targets(["original"], [2], [5], divisions=["a", "d"])


# ------------------------------------------------------------------------- plan and head
def test_fit_head_separates_separable_features_and_ignores_dead_ones():
    rng = np.random.default_rng(0)
    y = np.repeat([3, 7], 20)
    x = np.column_stack([np.where(y == 3, -1.0, 1.0) + rng.normal(0, 0.1, 40),
                         np.zeros(40)])                                    # [40, 2], one dead
    assert fit_head(x[::2], y[::2], x[1::2], y[1::2]) == 1.0
    assert fit_head(x[::2], y[::2], x[1::2], y[::-2]) == 0.0  # every test label flipped


def test_full_plan_meets_the_issues_minimums():
    plan = default_plan()
    assert len(plan.sources) >= 12
    assert {s.family for s in plan.sources} >= {"mlp", "cnn", "resnet"}
    assert len(plan.targets(0)) >= 150
    assert len(plan.domains) >= 5 and plan.resamplings >= 3
    assert any(s.epochs <= 1 for s in plan.sources)  # deliberately weak models


def test_source_spec_and_plan_reject_bad_values():
    with pytest.raises(ValueError, match="domain must be one of"):
        SourceSpec("m", "mlp", (8,), "sepia")
    with pytest.raises(ValueError, match="at least 2 distinct digits"):
        SourceSpec("m", "mlp", (8,), "original", classes=(3,))
    with pytest.raises(ValueError, match="epochs must be >= 0, got -1"):
        SourceSpec("m", "mlp", (8,), "original", epochs=-1)
    spec = SourceSpec("m", "mlp", (8,), "original")
    with pytest.raises(ValueError, match=r"unknown domain\(s\) \['sepia'\]"):
        ZooPlan(sources=(spec,), domains=("sepia",))
    with pytest.raises(ValueError, match="model ids must be unique"):
        ZooPlan(sources=(spec, spec), domains=("original",))
    with pytest.raises(ValueError, match="resamplings must be >= 1, got 0"):
        ZooPlan(sources=(spec,), domains=("original",), resamplings=0)


def test_cli_requires_a_subcommand_and_out_and_rejects_unknown_metrics(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main([])
    with pytest.raises(SystemExit):
        main(["build"])
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["build", "--out", str(tmp_path), "--small", "--metrics", "logme,nope"])
    assert exit_info.value.code == 2
    assert "Could not resolve 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "records.csv").exists()  # checked before any work
    with pytest.raises(ValueError, match="at least one tpred.scores metric"):
        build_zoo(tmp_path, small=True, metrics=[])


def test_a_rebuild_warns_about_feature_files_it_did_not_write(tmp_path, caplog):
    plan = default_plan(small=True)
    short = ZooPlan(sources=plan.sources[:3], domains=("original",), num_classes=(2,),
                    samples_per_class=(5,), divisions=("a",))
    stale = tmp_path / "features" / "old-model" / "old_2a_5.npz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    with caplog.at_level("WARNING", logger="tpred.zoo.build"):
        build_zoo(tmp_path, plan=short, metrics=["gbc"], progress=False, write_readme=False)
    assert "1 feature file(s) not written by this build" in caplog.text
    assert sorted(p.parent.name for p in (tmp_path / "features").glob("*/*.npz")) == sorted(
        [s.model for s in short.sources] + ["old-model"])
