"""What one forward pass of the gnn reads: the message graph and the queried pairs' inputs.

`RecordGraph` is the graph of one fit or prediction: the `HeteroData` that `tpred.graph.
build_graph` makes (its record edges are the candidates for message edges), plus what every batch
reuses (node similarities and Gram matrices of node features). `make_batch` turns a choice of
message edges and queried pairs into a `GNNBatch`:

- the message graph: `build_graph`'s graph restricted to the message record edges (both
  directions, as `ToUndirected` made them) whose edge features are the accuracy centred on the
  baseline's mu and the residual over the baseline; score edges unchanged;
- per queried pair: the decoder inputs [scores ‖ baseline terms ‖ gated terms], the baseline
  prediction and (for training pairs) the target accuracy. The gated terms are the simple
  methods' corrections of the baseline that the network blends linearly into its output (the
  gate, `GNNNet.neighbour_gate`): two neighbour residuals per similarity kernel
  (`neighbour_terms`, as `knn`), and with `GNNConfig.zmean_term` the `zmean` deviation.

The baseline and every gated term are fitted on the message edges only, so a queried pair's own
record never enters its own inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from tpred.graph import DATASET, MODEL, RECORD, message_graph
from tpred.models.gnn.baseline import Baseline, PriorNeighbours, fit_baseline
from tpred.models.gnn.target import to_target
from tpred.models.neighbours import (
    neighbour_level,
    neighbour_order,
    neighbour_weight,
    residual_table,
    sorted_neighbour_mean,
)
from tpred.models.zmean import zmean_fit

#: neighbour terms per similarity kernel (`neighbour_terms`' two columns); the mini-batch path
#: (`minibatch.py`) has the default single kernel, so this many gated terms
NUM_NEIGHBOUR_TERMS = 2
#: shrinkage added to the neighbour terms' total weight (a cosine weight of 1 is one fully
#: similar neighbour), so a pair with few or dissimilar neighbours gets a damped term
NEIGHBOUR_SHRINK = 1.0


@dataclass
class Kernel:
    """One similarity of the neighbour terms: per node type, similarity, its order and the
    weights in that order (`neighbour_weight`), computed once per graph.

    Shapes: dataset_sim, dataset_order, dataset_weight [D, D]; model_sim, model_order,
        model_weight [M, M] (None: the kernel has no similarity for that node type, and its
        column is 0).
    """

    dataset_sim: np.ndarray | None
    model_sim: np.ndarray | None
    dataset_order: np.ndarray | None = field(init=False)
    model_order: np.ndarray | None = field(init=False)
    dataset_weight: np.ndarray | None = field(init=False)
    model_weight: np.ndarray | None = field(init=False)

    def __post_init__(self) -> None:
        self.dataset_order, self.dataset_weight = _ordered(self.dataset_sim)
        self.model_order, self.model_weight = _ordered(self.model_sim)


def _ordered(sim: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """`neighbour_order` of a similarity and `neighbour_weight` in that order (None, None)."""
    if sim is None:
        return None, None
    order = neighbour_order(sim)
    return order, neighbour_weight(sim, order)


@dataclass
class RecordGraph:
    """One zoo's graph for the gnn, and what its batches reuse.

    Attributes:
        data: `build_graph`'s `HeteroData`; its `RECORD` edges are the records that may be
            message edges or targets, `edge_label` their accuracies.
        model_index, dataset_index: node ids (positions are node numbers).
        target_scale: (squeeze, scale) of the scale the network learns on (`gnn/target.py`);
            `rec_acc` holds the records on it.
        gram: per node type, the Gram matrix of node features (None: no features), for the
            baseline's feature prior.
        kernels: the similarities of the neighbour terms (each with the diagonal at -inf, so a
            node is never its own neighbour).
        zmean_term: whether the batches carry the `zmean` term.
        attention: candidates per pair of the attention neighbour term (`Candidates`; 0: off).
        level_terms: whether the batches carry the cold nodes' neighbour levels
            (`level_terms`).
        prior_neighbours: per node type, the neighbours whose level the baseline's feature
            prior averages in (`baseline.shrink_to_prior`; absent or None: the kernel-ridge
            prior alone).
        features_kernel: the similarity of node features whose neighbours the prior's level
            averages (`prior_neighbours`, and `GNNConfig.level_after`); None when neither is on.

    Shapes: gram[t] [N_t, N_t].
    """

    data: HeteroData
    model_index: pd.Index
    dataset_index: pd.Index
    target_scale: tuple[float, float]
    gram: dict[str, np.ndarray | None]
    kernels: list[Kernel]
    zmean_term: bool = False
    attention: int = 0
    level_terms: bool = False
    prior_neighbours: dict[str, PriorNeighbours | None] = field(default_factory=dict)
    features_kernel: Kernel | None = None

    def __post_init__(self) -> None:
        src, dst = self.data[RECORD].edge_index.numpy()
        #: record edges as arrays [E]: model, dataset, accuracy on the learning scale
        #: (`to_target` of the float64 of the graph's float32 accuracies)
        self.rec_src, self.rec_dst = src, dst
        self.rec_acc = to_target(self.data[RECORD].edge_label.numpy().astype(np.float64),
                                 *self.target_scale)

    @property
    def num_gated(self) -> int:
        """Gated terms per pair (`num_gated_terms`)."""
        return num_gated_terms(len(self.kernels), self.zmean_term, self.level_terms)


def num_gated_terms(num_kernels: int, zmean_term: bool, level_terms: bool) -> int:
    """Gated terms per pair: 2 per kernel, 1 for the zmean term, 2 for the level terms."""
    return (NUM_NEIGHBOUR_TERMS * num_kernels + int(zmean_term)
            + NUM_LEVEL_TERMS * int(level_terms))


@dataclass
class GNNBatch:
    """The input of one forward pass (`GNNNet.forward`) and its targets.

    Attributes:
        graph: the message graph (`message_graph`): node features `x`, message record edges in
            both directions with `edge_attr` [E_msg, 2] (accuracy − mu, accuracy − baseline),
            score edges in both directions.
        src, dst: the queried pairs' model and dataset node numbers.
        pair_x: decoder inputs per pair: standardised scores and missing flags [2S], baseline
            terms [`NUM_BASELINE_TERMS`], gated terms [G] (last).
        base: the baseline's prediction of each pair.
        y: the target accuracies (empty when predicting).
        num_gated: G.
        candidates: with `GNNConfig.attention`, the neighbours the network attends over: the
            datasets like d where m has a message edge, the models like m with one on d.

    Shapes: src, dst, base [P]; pair_x [P, 2S + 4 + G]; y [P] or [0].
    """

    graph: HeteroData
    src: Tensor
    dst: Tensor
    pair_x: Tensor
    base: Tensor
    y: Tensor
    num_gated: int = NUM_NEIGHBOUR_TERMS
    candidates: tuple[Candidates | None, Candidates | None] | None = None

    @property
    def gated(self) -> Tensor:
        """The gated columns of `pair_x` [P, G]."""
        return self.pair_x[:, self.pair_x.shape[1] - self.num_gated:]


@dataclass
class Candidates:
    """A pair's candidate neighbours of one node type for the attention term: the first
    `RecordGraph.attention` nodes in the first kernel's neighbour order (most similar first),
    their fixed similarity, and the residual over the baseline of the pair's other node with
    each of them (from message edges; `known` False where there is none).

    Shapes: node, sim, value, known, mask [P, C] (node int64, known bool, the others
        float32; mask is 0 where known and -inf elsewhere, for adding to logits).
    """

    node: Tensor
    sim: Tensor
    value: Tensor
    known: Tensor
    mask: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.mask = torch.zeros(self.known.shape).masked_fill_(~self.known, float("-inf"))


def _candidates(table: np.ndarray, order: np.ndarray | None, sim: np.ndarray | None,
                query: np.ndarray, other: np.ndarray, width: int, by_row: bool
                ) -> Candidates | None:
    """`Candidates` of the queried nodes `query` [P] (their neighbours' residuals with the
    pairs' `other` nodes [P]); `by_row`: the neighbours index the table's rows (models)."""
    if order is None:
        return None
    width = min(width, order.shape[1] - 1)                          # the last one is the node
    node = order[query, :width]                                       # [P, C]
    value = table[node, other[:, None]] if by_row else table[other[:, None], node]
    known = ~np.isnan(value)
    near = sim[query[:, None], node]                                  # [P, C]
    return Candidates(torch.from_numpy(node), torch.from_numpy(near.astype(np.float32)),
                      torch.from_numpy(np.where(known, value, 0.0).astype(np.float32)),
                      torch.from_numpy(known))


def message_baseline(g: RecordGraph, msg: np.ndarray,
                     prior_neighbours: dict[str, PriorNeighbours | None] | None = None
                     ) -> Baseline:
    """The additive baseline (`baseline.fit_baseline`) of the record edges `msg` [E_msg], with
    the feature prior's neighbours `prior_neighbours` (None: the graph's)."""
    near = g.prior_neighbours if prior_neighbours is None else prior_neighbours
    fallback = float(g.rec_acc.mean()) if len(g.rec_acc) else 0.5
    return fit_baseline(g.rec_src[msg], g.rec_dst[msg], g.rec_acc[msg], len(g.model_index),
                        len(g.dataset_index), fallback_mu=fallback, model_gram=g.gram[MODEL],
                        dataset_gram=g.gram[DATASET], model_neighbours=near.get(MODEL),
                        dataset_neighbours=near.get(DATASET))


def make_batch(g: RecordGraph, msg: np.ndarray, pair_scores: np.ndarray, *,
               neighbors: int, target: np.ndarray | None = None,
               query: tuple[np.ndarray, np.ndarray] | None = None,
               base: Baseline | None = None) -> GNNBatch:
    """A batch with record edges `msg` as messages, predicting `target` edges or `query` pairs.

    Args:
        g: the graph.
        msg: positions of the record edges used as messages [E_msg].
        pair_scores: decoder score inputs, per record edge [E, 2S] when `target` is given, per
            query pair [P, 2S] when `query` is.
        neighbors: k of the neighbour residuals (0: all zeros).
        target: positions of the record edges predicted (then y is their accuracy).
        query: (src, dst) node numbers of other pairs (then y is empty).
        base: `message_baseline(g, msg)` when the caller has it already (None: fitted here).
    """
    num_m, num_d = len(g.model_index), len(g.dataset_index)
    m_src, m_dst, m_acc = g.rec_src[msg], g.rec_dst[msg], g.rec_acc[msg]
    base = message_baseline(g, msg) if base is None else base
    m_resid = m_acc - base(m_src, m_dst)
    attr = np.stack([m_acc - base.mu, m_resid], axis=1)
    graph = message_graph(g.data, torch.from_numpy(np.asarray(msg, dtype=np.int64)),
                          torch.from_numpy(attr.astype(np.float32)))           # [E_msg, 2]
    if query is None:
        src, dst, scores = g.rec_src[target], g.rec_dst[target], pair_scores[target]
        y = torch.from_numpy(g.rec_acc[target].astype(np.float32))
    else:
        (src, dst), scores, y = query, pair_scores, torch.empty(0)
    # the residual table of the message edges, read by the neighbour and attention terms
    table = residual_table(m_src, m_dst, m_resid, num_m, num_d)
    gated = [neighbour_terms(kernel, table, src, dst, neighbors) for kernel in g.kernels]
    if g.zmean_term:
        gated.append(zmean_term(m_src, m_dst, m_acc, base, num_m, num_d, src, dst))
    if g.level_terms:
        gated.append(level_terms(g.kernels[0], base, src, dst, neighbors))
    pair_x = np.concatenate([scores, base.terms(src, dst), *gated],
                            axis=1).astype(np.float32)
    candidates = None
    if g.attention:
        kernel = g.kernels[0]
        candidates = (_candidates(table, kernel.dataset_order, kernel.dataset_sim, dst, src,
                                  g.attention, by_row=False),
                      _candidates(table, kernel.model_order, kernel.model_sim, src, dst,
                                  g.attention, by_row=True))
    return GNNBatch(graph, torch.from_numpy(src), torch.from_numpy(dst),
                    torch.from_numpy(pair_x), torch.from_numpy(base(src, dst).astype(np.float32)),
                    y, g.num_gated, candidates)


def neighbour_terms(kernel: Kernel, table: np.ndarray, src: np.ndarray, dst: np.ndarray,
                    k: int) -> np.ndarray:
    """Neighbour residuals of the queried pairs under one kernel [P, 2] (zeros when k = 0).

    `neighbours.neighbour_residuals` over `table`, the residuals of the message edges
    (`residual_table`, NaN where a pair is not a message edge), with shrinkage
    `NEIGHBOUR_SHRINK`: column 0 is model m's residual on the k datasets most like d, column 1
    the residual on d of the k models most like m. A pair's own record is never a message edge,
    so it never enters its own term.

    Shapes: table [M, D]; src, dst [P] -> [P, 2].
    """
    out = np.zeros((len(src), NUM_NEIGHBOUR_TERMS))
    if k == 0:
        return out
    # `neighbour_residuals` with the orders and weights of the kernel computed once per graph:
    # each pair's row of the table gathered directly in its neighbour order
    if kernel.dataset_sim is not None:
        out[:, 0] = _first_k_mean(lambda rows, cols: table[src[rows, None],
                                                           kernel.dataset_order[dst[rows], cols]],
                                  lambda rows, cols: kernel.dataset_weight[dst[rows], cols],
                                  len(src), table.shape[1], k)
    if kernel.model_sim is not None:
        out[:, 1] = _first_k_mean(lambda rows, cols: table[kernel.model_order[src[rows], cols],
                                                           dst[rows, None]],
                                  lambda rows, cols: kernel.model_weight[src[rows], cols],
                                  len(src), table.shape[0], k)
    return out


#: neighbours gathered first per pair, in multiples of 8 (see `_first_k_mean`)
FIRST_WIDTH = 8


def _first_k_mean(values, weights, num_pairs: int, num_nodes: int, k: int) -> np.ndarray:
    """`sorted_neighbour_mean` of every pair, reading only the first columns of its neighbour
    order where they hold k known residuals (the whole row only for the pairs where they do
    not): on DomainNet-270 a row is 270 neighbours long and the first k known are usually
    within the first few dozen. Pure speed: each row's k known entries and their weights are
    the same, and the width is a multiple of 8 so that numpy's row sums add the same numbers
    in the same order (the extra entries of a full row are exact zeros).

    Args:
        values, weights: (rows [R], cols slice) -> residuals / weights [R, C] in neighbour
            order.
        num_pairs, num_nodes: P and the row length N.

    Shapes: -> [P].
    """
    width = min(num_nodes, FIRST_WIDTH * -(-4 * k // FIRST_WIDTH))      # 4k, rounded up to 8
    rows = np.arange(num_pairs)
    head = slice(0, width)
    value = values(rows, head)
    out = sorted_neighbour_mean(value, weights(rows, head), k, shrink=NEIGHBOUR_SHRINK)
    if width < num_nodes and len(short := np.flatnonzero((~np.isnan(value)).sum(1) < k)):
        whole = slice(0, num_nodes)
        out[short] = sorted_neighbour_mean(values(short, whole), weights(short, whole), k,
                                           shrink=NEIGHBOUR_SHRINK)
    return out


#: gated level terms (`level_terms`): cold dataset, cold model
NUM_LEVEL_TERMS = 2


def level_terms(kernel: Kernel, base: Baseline, src: np.ndarray, dst: np.ndarray, k: int
                ) -> np.ndarray:
    """The cold nodes' levels as `knn` predicts them, over the baseline's [P, 2].

    Column 0: for a pair whose dataset d has no message edge, the similarity-weighted mean
    baseline effect of the k datasets most like d that have message edges, minus d's own
    (its feature prior, `baseline.shrink_to_prior`); 0 for the other pairs. Column 1: the same
    for the pair's model. With a gate on each, the network can lean on the neighbours' levels
    where the graph has nothing of the node (cold start), as `knn` does, and keep the feature
    prior where it predicts better.

    Shapes: src, dst [P] -> [P, 2].
    """
    out = np.zeros((len(src), NUM_LEVEL_TERMS))
    if k == 0:
        return out
    for col, (node, order, weight, effect, degree) in enumerate((
            (dst, kernel.dataset_order, kernel.dataset_weight, base.dataset_effect,
             base.dataset_degree),
            (src, kernel.model_order, kernel.model_weight, base.model_effect,
             base.model_degree))):
        if order is None or not (degree > 0).any():
            continue
        cold = np.flatnonzero(degree[node] == 0)
        if not len(cold):
            continue
        nodes, inverse = np.unique(node[cold], return_inverse=True)
        level, _ = neighbour_level(effect, degree > 0, order[nodes], weight[nodes], k)  # [U]
        out[cold, col] = (level - effect[nodes])[inverse]
    return out


def zmean_term(m_src: np.ndarray, m_dst: np.ndarray, m_acc: np.ndarray, base: Baseline,
               num_models: int, num_datasets: int, src: np.ndarray, dst: np.ndarray
               ) -> np.ndarray:
    """`zmean`'s prediction minus the baseline's, from the message edges [P, 1].

    zmean ranks a dataset's models by their mean per-dataset z-score (`zmean_fit`); a dataset
    without message edges takes the mean level and scale of the others, as `ZMeanPredictor`.

    Shapes: m_src, m_dst, m_acc [E_msg]; src, dst [P] -> [P, 1].
    """
    if len(m_src) == 0:
        return np.zeros((len(src), 1))
    z_model, level, scale = zmean_fit(m_src, m_dst, m_acc, num_models, num_datasets)
    seen = np.bincount(m_dst, minlength=num_datasets) > 0
    level = np.where(seen, level, level[seen].mean())
    scale = np.where(seen, scale, scale[seen].mean())
    return (level[dst] + scale[dst] * z_model[src] - base(src, dst))[:, None]
