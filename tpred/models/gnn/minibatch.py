"""Mini-batch training and prediction of the gnn for graphs too large for the full-batch path.

The full-batch path (`batch.make_batch`) holds, per node type, an N × N Gram matrix (the
baseline's feature prior) and an N × N similarity (the neighbour residuals), and passes messages
over every record edge at every step: on 10^5 datasets that is 160 GB before the first step. This
path keeps the same model and the same training signal, with memory and time per step set by the
batch, not the zoo:

- the baseline's feature prior is the same kernel ridge with a linear kernel, solved in feature
  space (`shrink_to_prior_primal`: (XᵀX + λI)⁻¹Xᵀy instead of (XXᵀ + λI)⁻¹y; equal by the
  push-through identity), so no N × N matrix;
- the neighbour residuals are computed from the message edges of each queried node
  (`tpred.models.sparse_neighbours.candidate_neighbour_mean`), never from dense tables;
- each training step draws the message/supervised split of `trainer.draw_message_split` as the
  full-batch path does, fits the baseline on the message edges, takes `batch_size` supervised
  edges as targets and passes messages over a sampled neighbourhood of their nodes only
  (`FANOUT` incoming edges per node and hop, over message records and score edges);
- the attention neighbour terms, the level terms and the score-similarity kernel's neighbour
  terms (`GNNConfig.attention`, `level_terms`, `neighbor_kernels`) are left out: they are
  gathered from a dense residual table and N × N neighbour orders (`GNNPredictor._net` builds
  the network without them; `_kernel_names`);
- validation uses a fixed sample of at most `VAL_MAX` validation edges; prediction runs over the
  queried pairs in chunks of `batch_size`, each with its sampled neighbourhood.

`trainer.train_network` runs unchanged: one draw is one step, so `max_epochs`/`patience` count
steps here (and `min_delta` is the improvement asked of every `patience` steps). Used when
`GNNConfig.batch_size` is set, or when the graph has more than `LARGE_RECORDS` records or
`LARGE_NODES` nodes of one type (`use_minibatch`).

The sampler is hand-written: PyG's `LinkNeighborLoader` needs `pyg-lib` or `torch-sparse`, which
have no wheels for the pinned torch 2.13 on PyPI (they build from source for many minutes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from tpred.graph import (
    DATASET,
    MODEL,
    RECORD,
    REV_RECORD,
    REV_SCORE,
    SCORE,
    build_graph,
    score_features,
    standardize_scores,
)
from tpred.models.gnn.baseline import (
    PRIOR_RIDGE,
    PRIOR_STRENGTH,
    Baseline,
    fit_shrunk_baseline,
)
from tpred.models.gnn.batch import NEIGHBOUR_SHRINK, NUM_NEIGHBOUR_TERMS, GNNBatch
from tpred.models.gnn.target import to_target
from tpred.models.gnn.trainer import (
    draw_message_split,
    member_seed,
    torch_context,
    train_network,
    validation_split,
)
from tpred.models.sparse_neighbours import Similarity, candidate_neighbour_mean

#: the full-batch path is used up to this many records and nodes of each type; beyond, or with
#: `GNNConfig.batch_size` set, this one. Its N x N matrices are 0.8 GB each at 10^4 nodes, and
#: bench/bench_scale.py's 1,000 x 10,000 zoo (33,823 records) took the full-batch gnn past 8 GB
#: RSS (1,000 datasets: 610 MB), hence 2,000 nodes.
LARGE_RECORDS = 200_000
LARGE_NODES = 2_000
#: targets per step when the graph is large and `GNNConfig.batch_size` is not set
DEFAULT_BATCH_SIZE = 4096
#: incoming edges sampled per node, per edge type, at hop 1 and hop 2 (as PyG's num_neighbors)
FANOUT = (10, 5)
#: validation edges scored after each step (a fixed random sample)
VAL_MAX = 8192


def use_minibatch(batch_size: int | None, num_records: int, num_models: int,
                  num_datasets: int) -> bool:
    """Whether the gnn trains on mini-batches (module docstring)."""
    return (batch_size is not None or num_records > LARGE_RECORDS
            or max(num_models, num_datasets) > LARGE_NODES)


def shrink_to_prior_primal(effect: np.ndarray, degree: np.ndarray, x: np.ndarray | None
                           ) -> np.ndarray:
    """`baseline.shrink_to_prior` without the N × N Gram matrix.

    The prior is the kernel-ridge fit with the linear kernel K = X Xᵀ of the seen nodes'
    effects, which equals ridge regression in feature space: w = (XᵀX + λI)⁻¹ Xᵀ (e − level),
    prior = level + X w, with λ = PRIOR_RIDGE × mean(diag K) = PRIOR_RIDGE × mean squared row
    norm. Each effect becomes (n · effect + PRIOR_STRENGTH · prior) / (n + PRIOR_STRENGTH).

    Shapes: effect, degree [N]; x [N, F] -> [N].
    """
    seen = degree > 0
    if x is None or x.shape[1] == 0 or PRIOR_STRENGTH == 0 or seen.sum() < 2:
        return effect
    xs = x[seen]                                                              # [T, F]
    level = effect[seen].mean()
    ridge = PRIOR_RIDGE * max(float(np.mean((xs**2).sum(1))), 1e-12)
    coef = np.linalg.solve(xs.T @ xs + ridge * np.eye(x.shape[1]),
                           xs.T @ (effect[seen] - level))                     # [F]
    prior = level + x @ coef                                                  # [N]
    return (degree * effect + PRIOR_STRENGTH * prior) / (degree + PRIOR_STRENGTH)


def fit_baseline_primal(src: np.ndarray, dst: np.ndarray, acc: np.ndarray, num_models: int,
                        num_datasets: int, *, fallback_mu: float, model_x: np.ndarray | None,
                        dataset_x: np.ndarray | None) -> Baseline:
    """`baseline.fit_baseline` with the prior solved in feature space (no Gram matrices)."""
    return fit_shrunk_baseline(
        src, dst, acc, num_models, num_datasets, fallback_mu=fallback_mu,
        shrink_models=lambda e, n: shrink_to_prior_primal(e, n, model_x),
        shrink_datasets=lambda e, n: shrink_to_prior_primal(e, n, dataset_x))


class _Incoming:
    """Edges of one type grouped by destination node (CSR), for sampling."""

    def __init__(self, src: np.ndarray, dst: np.ndarray, num_dst: int) -> None:
        self.order = np.argsort(dst, kind="stable")                            # edge ids
        self.src = src[self.order]
        self.start = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=num_dst))])

    def sample(self, nodes: np.ndarray, fanout: int, rng: np.random.Generator,
               allowed: np.ndarray | None = None) -> np.ndarray:
        """Ids of up to `fanout` incoming edges per node (drawn with replacement, then unique;
        only `allowed` edges kept) [S]."""
        deg = self.start[nodes + 1] - self.start[nodes]
        has = deg > 0
        nodes, deg = nodes[has], deg[has]
        if not len(nodes):
            return np.zeros(0, dtype=np.int64)
        draws = 2 * fanout if allowed is not None else fanout  # about half are messages
        pick = self.start[nodes][:, None] + (rng.random((len(nodes), draws))
                                             * deg[:, None]).astype(np.int64)  # [B, draws]
        ids = np.unique(self.order[pick.ravel()])
        if allowed is not None:
            ids = ids[allowed[ids]]
        return ids


@dataclass
class LargeGraph:
    """What every step of a large graph reuses: node features, record and score edges by
    destination, pair score inputs, similarities (computed on demand, never N × N)."""

    model_x: np.ndarray            # [M, F_m] float64 (baseline prior, similarity)
    dataset_x: np.ndarray          # [D, F_d]
    x_t: dict[str, torch.Tensor]   # float32 node features of the network
    rec_src: np.ndarray            # [E] record edges (the candidates for messages and targets)
    rec_dst: np.ndarray
    rec_acc: np.ndarray
    score_src: np.ndarray          # [E_s] score edges and their features [E_s, 2S]
    score_dst: np.ndarray
    score_attr: torch.Tensor
    model_sim: Similarity          # cosine of centred features, a node never its own neighbour
    dataset_sim: Similarity

    def __post_init__(self) -> None:
        num_m, num_d = len(self.model_x), len(self.dataset_x)
        self.incoming = {RECORD: _Incoming(self.rec_src, self.rec_dst, num_d),
                         REV_RECORD: _Incoming(self.rec_dst, self.rec_src, num_m),
                         SCORE: _Incoming(self.score_src, self.score_dst, num_d),
                         REV_SCORE: _Incoming(self.score_dst, self.score_src, num_m)}

    @property
    def num_models(self) -> int:
        return len(self.model_x)

    @property
    def num_datasets(self) -> int:
        return len(self.dataset_x)


def make_large_graph(data: HeteroData, model_x: np.ndarray, dataset_x: np.ndarray,
                     center: dict[str, np.ndarray], target_scale: tuple[float, float]
                     ) -> LargeGraph:
    """A `LargeGraph` from `build_graph`'s `HeteroData` (its record and score edges), the
    accuracies on the learning scale `target_scale` (squeeze, scale: `gnn/target.py`)."""
    src, dst = data[RECORD].edge_index.numpy()
    if SCORE in data.edge_types:
        s_src, s_dst = data[SCORE].edge_index.numpy()
        s_attr = data[SCORE].edge_attr
    else:
        s_src = s_dst = np.zeros(0, dtype=np.int64)
        s_attr = torch.zeros((0, 0))
    mx, dx = np.asarray(model_x, np.float64), np.asarray(dataset_x, np.float64)
    return LargeGraph(mx, dx, {MODEL: data[MODEL].x, DATASET: data[DATASET].x}, src, dst,
                      to_target(data[RECORD].edge_label.numpy().astype(np.float64), *target_scale),
                      s_src, s_dst, s_attr,
                      Similarity([mx - center[MODEL]], [mx - center[MODEL]], same_nodes=True),
                      Similarity([dx - center[DATASET]], [dx - center[DATASET]],
                                 same_nodes=True))


def large_batch(g: LargeGraph, msg: np.ndarray, src: np.ndarray, dst: np.ndarray,
                pair_scores: np.ndarray, *, neighbors: int, rng: np.random.Generator,
                y: np.ndarray | None = None, base: Baseline | None = None) -> GNNBatch:
    """The batch of pairs (src, dst): messages over a sampled neighbourhood of their nodes among
    the record edges `msg` and the score edges; inputs as `batch.make_batch`.

    Args:
        g: the graph.
        msg: positions of the record edges that may carry messages [E_msg].
        src, dst: the queried pairs' node numbers [P].
        pair_scores: their decoder score inputs [P, 2S].
        neighbors: k of the neighbour residuals.
        rng: draws the neighbourhood sample.
        y: target accuracies [P], or None when predicting.
        base: the baseline fitted on `msg` (fitted here when None).
    """
    m_src, m_dst, m_acc = g.rec_src[msg], g.rec_dst[msg], g.rec_acc[msg]
    if base is None:
        base = fit_baseline_primal(m_src, m_dst, m_acc, g.num_models, g.num_datasets,
                                   fallback_mu=float(g.rec_acc.mean()) if len(g.rec_acc) else 0.5,
                                   model_x=g.model_x, dataset_x=g.dataset_x)
    allowed = np.zeros(len(g.rec_src), dtype=bool)
    allowed[msg] = True
    # residual and centred accuracy of every record (only message ones are read)
    resid_all = g.rec_acc - base(g.rec_src, g.rec_dst)
    graph, (local_src, local_dst) = _sampled_graph(g, allowed, resid_all, base.mu, src, dst, rng)
    near = np.zeros((len(src), NUM_NEIGHBOUR_TERMS))
    if neighbors and len(msg):
        m_resid = resid_all[msg]
        near[:, 0] = candidate_neighbour_mean(src, dst, m_src, m_dst, m_resid, g.num_models,
                                              g.dataset_sim, neighbors, shrink=NEIGHBOUR_SHRINK)
        near[:, 1] = candidate_neighbour_mean(dst, src, m_dst, m_src, m_resid, g.num_datasets,
                                              g.model_sim, neighbors, shrink=NEIGHBOUR_SHRINK)
    pair_x = np.concatenate([pair_scores, base.terms(src, dst), near], axis=1).astype(np.float32)
    return GNNBatch(graph, local_src, local_dst, torch.from_numpy(pair_x),
                    torch.from_numpy(base(src, dst).astype(np.float32)),
                    torch.empty(0) if y is None else torch.from_numpy(y.astype(np.float32)))


def _sampled_graph(g: LargeGraph, allowed: np.ndarray, resid_all: np.ndarray, mu: float,
                   src: np.ndarray, dst: np.ndarray, rng: np.random.Generator
                   ) -> tuple[HeteroData, tuple[torch.Tensor, torch.Tensor]]:
    """The message subgraph around the queried pairs, nodes relabelled, and the pairs' local
    node numbers (model, dataset) [P] each."""
    seeds = {MODEL: np.unique(src), DATASET: np.unique(dst)}
    rec_ids, score_ids = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    frontier = seeds
    for fanout in FANOUT:
        found = {MODEL: [], DATASET: []}
        for et, node_type, ids_list, ok in ((RECORD, DATASET, rec_ids, allowed),
                                            (REV_RECORD, MODEL, rec_ids, allowed),
                                            (SCORE, DATASET, score_ids, None),
                                            (REV_SCORE, MODEL, score_ids, None)):
            ids = g.incoming[et].sample(frontier[node_type], fanout, rng, ok)
            ids_list.append(ids)
            is_rec = et in (RECORD, REV_RECORD)
            if node_type == DATASET:  # incoming from models
                found[MODEL].append((g.rec_src if is_rec else g.score_src)[ids])
            else:
                found[DATASET].append((g.rec_dst if is_rec else g.score_dst)[ids])
        frontier = {t: np.unique(np.concatenate(v)) if v else np.zeros(0, dtype=np.int64)
                    for t, v in found.items()}
    rec = np.unique(np.concatenate(rec_ids))
    sco = np.unique(np.concatenate(score_ids))
    nodes = {MODEL: np.unique(np.concatenate([seeds[MODEL], g.rec_src[rec], g.score_src[sco]])),
             DATASET: np.unique(np.concatenate([seeds[DATASET], g.rec_dst[rec],
                                                g.score_dst[sco]]))}
    local = {t: np.full(n, -1, dtype=np.int64) for t, n in ((MODEL, g.num_models),
                                                            (DATASET, g.num_datasets))}
    for t, ids in nodes.items():
        local[t][ids] = np.arange(len(ids))
    data = HeteroData()
    for t, ids in nodes.items():
        data[t].x = g.x_t[t][torch.from_numpy(ids)]                            # [n_t, F_t]
        data[t].num_nodes = len(ids)
    r_index = torch.from_numpy(np.stack([local[MODEL][g.rec_src[rec]],
                                         local[DATASET][g.rec_dst[rec]]]))     # [2, E_r]
    attr = torch.from_numpy(np.stack([g.rec_acc[rec] - mu, resid_all[rec]], 1).astype(np.float32))
    data[RECORD].edge_index, data[RECORD].edge_attr = r_index, attr
    data[REV_RECORD].edge_index, data[REV_RECORD].edge_attr = r_index.flip(0), attr
    if g.score_attr.shape[1]:
        s_index = torch.from_numpy(np.stack([local[MODEL][g.score_src[sco]],
                                             local[DATASET][g.score_dst[sco]]]))
        s_attr = g.score_attr[torch.from_numpy(sco)]
        data[SCORE].edge_index, data[SCORE].edge_attr = s_index, s_attr
        data[REV_SCORE].edge_index, data[REV_SCORE].edge_attr = s_index.flip(0), s_attr
    return data, (torch.from_numpy(local[MODEL][src]), torch.from_numpy(local[DATASET][dst]))


# ------------------------------------------------------------------------------ drivers
def fit_large(predictor, zoo, train_pairs: pd.DataFrame) -> None:
    """Fit `predictor.config.ensemble` networks on mini-batches; sets `members_` and `epochs_`
    (steps here) on `predictor` (a `GNNPredictor` whose featurizers, node features, centres and
    `num_features_` are fitted by `_prepare`)."""
    cfg = predictor.config
    data = build_graph(zoo, train_pairs, predictor.model_x_, predictor.dataset_x_,
                       model_index=zoo.model_ids, dataset_index=zoo.dataset_ids,
                       score_metrics=predictor._edge_metrics())
    g = make_large_graph(data, predictor.model_x_, predictor.dataset_x_, predictor.center_,
                         predictor._target_scale())
    pairs = pd.DataFrame({"model": zoo.model_ids[g.rec_src],
                          "dataset": zoo.dataset_ids[g.rec_dst]})
    pair_scores = score_features(standardize_scores(zoo, pairs, predictor.metrics_))  # [E, 2S]
    batch_size = cfg.batch_size or DEFAULT_BATCH_SIZE
    predictor.members_, predictor.epochs_ = [], []
    with torch_context(cfg.num_threads):
        for k in range(cfg.ensemble):
            seed = member_seed(predictor.seed, k)
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            net = predictor._net()
            is_val = validation_split(g.rec_dst, cfg.val_fraction, rng)
            fit_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
            val_batch = None
            if len(val_idx):
                v = rng.permutation(val_idx)[:VAL_MAX]
                val_batch = large_batch(g, fit_idx, g.rec_src[v], g.rec_dst[v], pair_scores[v],
                                        neighbors=cfg.neighbors, rng=rng, y=g.rec_acc[v])

            def draw(rng=rng, fit_idx=fit_idx) -> GNNBatch:
                msg, sup = draw_message_split(g.rec_src, g.rec_dst, fit_idx, g.num_models,
                                              g.num_datasets, rng)
                t = rng.choice(sup, size=min(batch_size, len(sup)), replace=False)
                return large_batch(g, msg, g.rec_src[t], g.rec_dst[t], pair_scores[t],
                                   neighbors=cfg.neighbors, rng=rng, y=g.rec_acc[t])

            state, steps = train_network(net, draw, val_batch, cfg)
            predictor.members_.append(state)
            predictor.epochs_.append(steps)


def predict_large(predictor, zoo, known: pd.DataFrame, pairs: pd.DataFrame,
                  model_x: np.ndarray, dataset_x: np.ndarray
                  ) -> np.ndarray:
    """Every member's outputs for `pairs` [K, P] (on the scale of `logit_squeeze`), with the
    records `known` as messages, in chunks of the batch size (the neighbourhood sample is
    seeded by `predictor.seed`)."""
    cfg = predictor.config
    data = build_graph(zoo, known, model_x, dataset_x, model_index=zoo.model_ids,
                       dataset_index=zoo.dataset_ids,
                       score_metrics=predictor._edge_metrics())
    g = make_large_graph(data, model_x, dataset_x, predictor.center_,
                         predictor._target_scale())
    msg = np.arange(len(g.rec_src))
    base = fit_baseline_primal(g.rec_src, g.rec_dst, g.rec_acc, g.num_models, g.num_datasets,
                               fallback_mu=float(g.rec_acc.mean()) if len(msg) else 0.5,
                               model_x=g.model_x, dataset_x=g.dataset_x)
    src = zoo.model_ids.get_indexer(pairs["model"].to_numpy())
    dst = zoo.dataset_ids.get_indexer(pairs["dataset"].to_numpy())
    scores = score_features(standardize_scores(zoo, pairs, predictor.metrics_))  # [P, 2S]
    rng = np.random.default_rng(predictor.seed)
    step = cfg.batch_size or DEFAULT_BATCH_SIZE
    out = np.zeros((len(predictor.members_), len(pairs)))
    net = predictor._net()
    with torch_context(cfg.num_threads), torch.no_grad():
        for lo in range(0, len(pairs), step):
            c = slice(lo, lo + step)
            batch = large_batch(g, msg, src[c], dst[c], scores[c], neighbors=cfg.neighbors,
                                rng=rng, base=base)
            for k, state in enumerate(predictor.members_):
                net.load_state_dict(state)
                net.eval()
                out[k, c] = net(batch).numpy()
    return out
