"""The gnn on mini-batches (tpred/models/gnn/minibatch.py): the prior without Gram matrices, the
sampled message graph, no leakage, and memory that stays far below a dense M x D matrix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tpred.config import GNNConfig, TrainConfig
from tpred.data.zoo import Zoo
from tpred.evaluation.protocols import make_splits
from tpred.graph import RECORD, build_graph
from tpred.models import make_predictor
from tpred.models.gnn.baseline import shrink_to_prior
from tpred.models.gnn.minibatch import (
    LARGE_NODES,
    LARGE_RECORDS,
    large_batch,
    make_large_graph,
    shrink_to_prior_primal,
    use_minibatch,
)
from tpred.zoo.synth import SynthSpec, synth_zoo

REPO = Path(__file__).resolve().parents[2]


def test_primal_prior_equals_the_kernel_prior():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    effect, degree = rng.normal(size=30), rng.integers(0, 4, size=30).astype(float)
    np.testing.assert_allclose(shrink_to_prior_primal(effect, degree, x),
                               shrink_to_prior(effect, degree, x @ x.T), atol=1e-10)
    assert shrink_to_prior_primal(effect, degree, None) is effect


def test_large_graphs_or_a_batch_size_choose_mini_batches():
    assert not use_minibatch(None, LARGE_RECORDS, LARGE_NODES, 10)
    assert use_minibatch(None, LARGE_RECORDS + 1, 10, 10)
    assert use_minibatch(None, 10, 10, LARGE_NODES + 1)
    assert use_minibatch(64, 10, 10, 10)
    with pytest.raises(ValueError, match=r"GNNConfig.batch_size must be an integer >= 1 or null"):
        GNNConfig(batch_size=0)


def small_zoo(seed: int = 0) -> tuple[Zoo, TrainConfig]:
    synth = synth_zoo(SynthSpec(20, 60, 0.4, seed=seed, text=False))
    zoo = Zoo.from_frames(synth.models, synth.datasets, synth.records, synth.scores)
    cfg = TrainConfig.from_dict({
        "model_features": {"numeric": ["num_parameters"], "log": ["num_parameters"],
                           "categorical": ["architecture_family", "source_domain"]},
        "dataset_features": {"numeric": ["num_classes"], "categorical": ["domain"]},
        "gnn": {"batch_size": 64, "max_epochs": 25, "patience": 10, "hidden_channels": 16}})
    return zoo, cfg


def test_sampled_message_graph_holds_message_records_only():
    zoo, cfg = small_zoo()
    pairs = zoo.known_pairs()
    x_m, x_d = np.ones((len(zoo.model_ids), 1)), np.ones((len(zoo.dataset_ids), 1))
    data = build_graph(zoo, pairs, x_m, x_d, model_index=zoo.model_ids,
                       dataset_index=zoo.dataset_ids)
    g = make_large_graph(data, x_m, x_d, {"model": np.zeros(1), "dataset": np.zeros(1)},
                         (0.0, 1.0))
    rng = np.random.default_rng(1)
    targets = rng.choice(len(g.rec_src), size=40, replace=False)
    msg = np.setdiff1d(np.arange(len(g.rec_src)), targets)
    batch = large_batch(g, msg, g.rec_src[targets], g.rec_dst[targets],
                        np.zeros((40, 4)), neighbors=3, rng=rng, y=g.rec_acc[targets])
    sub = batch.graph
    # in local node numbers: the subgraph's record edges are message records, never a target
    local_m, local_d = batch.src.numpy(), batch.dst.numpy()
    target_local = set(zip(local_m.tolist(), local_d.tolist(), strict=True))
    sampled = set(zip(sub[RECORD].edge_index[0].tolist(), sub[RECORD].edge_index[1].tolist(),
                      strict=True))
    assert sampled and not target_local & sampled
    assert len(sampled) <= len(msg)
    assert batch.pair_x.shape == (40, 4 + 4 + 2) and batch.y.shape == (40,)


@pytest.mark.slow
def test_mini_batch_gnn_ignores_test_accuracies_and_beats_additive():
    """Two fits with the same seed give identical predictions (deterministic on CPU) although
    the second zoo's test accuracies are flipped; and the gnn's MSE beats additive's."""
    zoo, cfg = small_zoo()
    split = make_splits("cold-dataset", zoo, 0, cfg.protocol)[0]
    gnn = make_predictor("gnn", cfg, 0).fit(zoo, split.train)
    assert gnn.minibatch_ and len(gnn.epochs_) == 1
    assert cfg.gnn.attention > 0                        # on by default, but not on this path
    assert not any(k.startswith("attention.") for k in gnn.members_[0])
    pred = gnn.predict(split.test)
    poisoned = zoo.records.copy()
    is_test = pd.MultiIndex.from_frame(poisoned[["model", "dataset"]]).isin(
        pd.MultiIndex.from_frame(split.test))
    poisoned.loc[is_test, "accuracy"] = 1.0 - poisoned.loc[is_test, "accuracy"]
    zoo2 = Zoo.from_frames(zoo.models, zoo.datasets, poisoned, zoo.scores)
    again = make_predictor("gnn", cfg, 0).fit(zoo2, split.train).predict(split.test)
    np.testing.assert_array_equal(pred, again)  # a test accuracy is never an input
    true = zoo.accuracy(split.test)
    additive = make_predictor("additive", cfg, 0).fit(zoo, split.train).predict(split.test)
    assert np.mean((pred - true) ** 2) < np.mean((additive - true) ** 2)


MEMORY_CHILD = """
import gc, json, os, re, sys, warnings
import numpy as np
from tpred.config import TrainConfig
from tpred.data.zoo import Zoo
from tpred.evaluation.protocols import make_splits
from tpred.models import make_predictor
from tpred.zoo.synth import SynthSpec, synth_zoo
warnings.simplefilter("ignore")
num_m, num_d = int(sys.argv[1]), int(sys.argv[2])
synth = synth_zoo(SynthSpec(num_m, num_d, 1e-4, seed=0, text=False))
zoo = Zoo.from_frames(synth.models, synth.datasets, synth.records, synth.scores)
del synth
cfg = TrainConfig.from_dict({
    "model_features": {"numeric": ["num_parameters"], "log": ["num_parameters"],
                       "categorical": ["architecture_family", "source_domain"]},
    "dataset_features": {"numeric": ["num_classes"], "categorical": ["domain"]},
    "gnn": {"batch_size": 512, "max_epochs": 4, "patience": 4, "hidden_channels": 16}})
split = make_splits("cold-dataset", zoo, 0, cfg.protocol)[0]
now = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
# the process's peak RSS (VmHWM), reset once the zoo is built so that building it (a larger
# peak than any method's) does not mask the methods' own peaks (ru_maxrss cannot be reset)
hwm = re.compile(r"VmHWM:\s+(\d+) kB")
peak = lambda: int(hwm.search(open("/proc/self/status").read()).group(1)) * 1024
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
out = {"records": len(zoo.records), "before": now(), "reset_peak": peak()}
for method in sys.argv[3].split(","):
    pred = make_predictor(method, cfg, 0).fit(zoo, split.train).predict(split.test)
    assert np.isfinite(pred).all() and len(pred) == len(split.test)
    out[method] = peak()
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"),
                    reason="needs Linux's /proc/self/clear_refs to reset the peak RSS")
def test_training_and_predicting_stay_under_a_budget_a_dense_matrix_exceeds():
    """A zoo of 1,000 models x 40,000 datasets (80,000 records): one dense M x D float64 matrix
    is 320 MB (D x D: 12.8 GB). Fitting and predicting one cold-dataset fold with each method,
    in turn, in a fresh process, keeps its peak RSS within 256 MB of its RSS once the zoo is
    built (peak RSS only grows: each method's figure bounds it and every method before it)."""
    num_m, num_d, budget = 1000, 40_000, 256 * 2**20
    assert num_m * num_d * 8 > budget
    methods = ("additive", "lr", "mf", "knn", "gnn")
    proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(num_m), str(num_d),
                           ",".join(methods)],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    grown = {m: f"{(out[m] - out['before']) / 2**20:.0f} MB" for m in methods}
    print(f"{out['records']} records, peak RSS growth up to and including each method: {grown}")
    assert out["records"] >= 2 * num_d
    assert out["reset_peak"] - out["before"] < 16 * 2**20  # the reset took: peak == current RSS
    assert out[methods[-1]] - out["before"] < budget, grown
