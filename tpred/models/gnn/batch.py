"""What one forward pass of the gnn reads: the message graph and the queried pairs' inputs.

`RecordGraph` is the graph of one fit or prediction: the `HeteroData` that `tpred.graph.
build_graph` makes (its record edges are the candidates for message edges), plus what every batch
reuses (node similarities and Gram matrices of node features). `make_batch` turns a choice of
message edges and queried pairs into a `GNNBatch`:

- the message graph: `build_graph`'s graph restricted to the message record edges (both
  directions, as `ToUndirected` made them) whose edge features are the accuracy centred on the
  baseline's mu and the residual over the baseline; score edges unchanged;
- per queried pair: the decoder inputs [scores ‖ baseline terms ‖ neighbour residuals], the
  baseline prediction and (for training pairs) the target accuracy.

The baseline and the neighbour residuals are fitted on the message edges only, so a queried
pair's own record never enters its own inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from tpred.graph import DATASET, MODEL, RECORD, message_graph
from tpred.models.gnn.baseline import fit_baseline
from tpred.models.neighbours import neighbour_residuals, residual_table

#: decoder inputs per pair from the neighbour residuals (`neighbour_residuals`' two columns)
NUM_NEIGHBOUR_TERMS = 2
#: shrinkage added to the neighbour terms' total weight (a cosine weight of 1 is one fully
#: similar neighbour), so a pair with few or dissimilar neighbours gets a damped term
NEIGHBOUR_SHRINK = 1.0


@dataclass
class RecordGraph:
    """One zoo's graph for the gnn, and what its batches reuse.

    Attributes:
        data: `build_graph`'s `HeteroData`; its `RECORD` edges are the records that may be
            message edges or targets, `edge_label` their accuracies.
        model_index, dataset_index: node ids (positions are node numbers).
        gram: per node type, the Gram matrix of node features (None: no features), for the
            baseline's feature prior.
        similarity: per node type, cosine similarity of centred node features with the
            diagonal at -inf (None: no features), for the neighbour residuals.

    Shapes: gram[t], similarity[t] [N_t, N_t].
    """

    data: HeteroData
    model_index: pd.Index
    dataset_index: pd.Index
    gram: dict[str, np.ndarray | None]
    similarity: dict[str, np.ndarray | None]

    def __post_init__(self) -> None:
        src, dst = self.data[RECORD].edge_index.numpy()
        #: record edges as arrays [E]: model, dataset, accuracy (float64 of the graph's float32)
        self.rec_src, self.rec_dst = src, dst
        self.rec_acc = self.data[RECORD].edge_label.numpy().astype(np.float64)


@dataclass
class GNNBatch:
    """The input of one forward pass (`GNNNet.forward`) and its targets.

    Attributes:
        graph: the message graph (`message_graph`): node features `x`, message record edges in
            both directions with `edge_attr` [E_msg, 2] (accuracy − mu, accuracy − baseline),
            score edges in both directions.
        src, dst: the queried pairs' model and dataset node numbers.
        pair_x: decoder inputs per pair: standardised scores and missing flags [2S], baseline
            terms [`NUM_BASELINE_TERMS`], neighbour residuals [`NUM_NEIGHBOUR_TERMS`] (last).
        base: the baseline's prediction of each pair.
        y: the target accuracies (empty when predicting).

    Shapes: src, dst, base [P]; pair_x [P, 2S + 4 + 2]; y [P] or [0].
    """

    graph: HeteroData
    src: Tensor
    dst: Tensor
    pair_x: Tensor
    base: Tensor
    y: Tensor

    @property
    def near(self) -> Tensor:
        """The neighbour residual columns of `pair_x` [P, NUM_NEIGHBOUR_TERMS]."""
        return self.pair_x[:, self.pair_x.shape[1] - NUM_NEIGHBOUR_TERMS:]


def make_batch(g: RecordGraph, msg: np.ndarray, pair_scores: np.ndarray, *,
               neighbors: int, target: np.ndarray | None = None,
               query: tuple[np.ndarray, np.ndarray] | None = None) -> GNNBatch:
    """A batch with record edges `msg` as messages, predicting `target` edges or `query` pairs.

    Args:
        g: the graph.
        msg: positions of the record edges used as messages [E_msg].
        pair_scores: decoder score inputs, per record edge [E, 2S] when `target` is given, per
            query pair [P, 2S] when `query` is.
        neighbors: k of the neighbour residuals (0: all zeros).
        target: positions of the record edges predicted (then y is their accuracy).
        query: (src, dst) node numbers of other pairs (then y is empty).
    """
    num_m, num_d = len(g.model_index), len(g.dataset_index)
    m_src, m_dst, m_acc = g.rec_src[msg], g.rec_dst[msg], g.rec_acc[msg]
    fallback = float(g.rec_acc.mean()) if len(g.rec_acc) else 0.5
    base = fit_baseline(m_src, m_dst, m_acc, num_m, num_d, fallback_mu=fallback,
                        model_gram=g.gram[MODEL], dataset_gram=g.gram[DATASET])
    m_resid = m_acc - base(m_src, m_dst)
    attr = np.stack([m_acc - base.mu, m_resid], axis=1)
    graph = message_graph(g.data, torch.from_numpy(np.asarray(msg, dtype=np.int64)),
                          torch.from_numpy(attr.astype(np.float32)))           # [E_msg, 2]
    if query is None:
        src, dst, scores = g.rec_src[target], g.rec_dst[target], pair_scores[target]
        y = torch.from_numpy(g.rec_acc[target].astype(np.float32))
    else:
        (src, dst), scores, y = query, pair_scores, torch.empty(0)
    near = neighbour_terms(g, m_src, m_dst, m_resid, src, dst, neighbors)
    pair_x = np.concatenate([scores, base.terms(src, dst), near], axis=1).astype(np.float32)
    return GNNBatch(graph, torch.from_numpy(src), torch.from_numpy(dst),
                    torch.from_numpy(pair_x), torch.from_numpy(base(src, dst).astype(np.float32)),
                    y)


def neighbour_terms(g: RecordGraph, m_src: np.ndarray, m_dst: np.ndarray, m_resid: np.ndarray,
                    src: np.ndarray, dst: np.ndarray, k: int) -> np.ndarray:
    """Neighbour residuals of the queried pairs [P, NUM_NEIGHBOUR_TERMS] (zeros when k = 0).

    `neighbour_residuals` over the residual table of the message edges, with the similarity of
    centred node features (`RecordGraph.similarity`) and shrinkage `NEIGHBOUR_SHRINK`: column 0
    is model m's residual on the k datasets most like d, column 1 the residual on d of the k
    models most like m. A pair's own record is never a message edge, so it never enters its own
    term.

    Shapes: m_src, m_dst, m_resid [E_msg]; src, dst [P] -> [P, 2].
    """
    if k == 0 or len(m_src) == 0:
        return np.zeros((len(src), NUM_NEIGHBOUR_TERMS))
    table = residual_table(m_src, m_dst, m_resid, len(g.model_index), len(g.dataset_index))
    sim_d, sim_m = g.similarity[DATASET], g.similarity[MODEL]
    return neighbour_residuals(table, src, dst, None if sim_d is None else sim_d[dst],
                               None if sim_m is None else sim_m[src], k,
                               shrink=NEIGHBOUR_SHRINK)
