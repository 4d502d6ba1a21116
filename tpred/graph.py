"""The model–dataset graph: a PyG `HeteroData` of training records and score edges.

Node types `model` and `dataset`, with the node features of each as `x` (rows in the order of
`model_index`/`dataset_index`). Edge types:

- `RECORD` `("model", "finetuned_on", "dataset")`: one edge per *training* record, nothing else
  (leakage rule 1 of design.md: a test pair's accuracy is never an edge); `edge_label` [E] and
  `edge_attr` [E, 1] hold the accuracy.
- `SCORE` `("model", "scored_on", "dataset")`: one edge per pair with at least one score among
  the metrics used, test pairs included (scores need no fine-tuning, so they are inputs for every
  pair); `edge_attr` [E_s, 2S] is the score vector z-scored per metric per dataset
  (`standardize_scores`), missing scores as 0, then one missing-indicator column per metric.
  Present only when at least one metric is used.
- `REV_RECORD`, `REV_SCORE`: the reverse edges (`ToUndirected`) for message passing into the
  models, with the same `edge_attr` and without `edge_label` (as PyG's `hetero_link_pred.py`).
  Reverse edge i is forward edge i flipped, so one set of positions selects both
  (`message_graph`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch_geometric.transforms as T
from torch_geometric.data import HeteroData

from tpred.data.ids import check_known_ids

if TYPE_CHECKING:
    from tpred.data.zoo import Zoo

MODEL, DATASET = "model", "dataset"
RECORD = (MODEL, "finetuned_on", DATASET)
SCORE = (MODEL, "scored_on", DATASET)
REV_RECORD = (DATASET, "rev_finetuned_on", MODEL)
REV_SCORE = (DATASET, "rev_scored_on", MODEL)

#: a (dataset, metric) group whose standard deviation is below this is constant: z-scores 0
STD_EPS = 1e-12


def standardize_scores(zoo: Zoo, pairs: pd.DataFrame, metrics: Sequence[str]) -> np.ndarray:
    """Each pair's scores z-scored per metric over the models of its dataset.

    A score ranks models for one dataset; its level and spread differ between datasets (LogME of
    a 2-class and of a 32-class task are not comparable), so each (dataset, metric) group of the
    zoo's scores table is standardised on its own: (value − mean) / std with the population std
    (ddof=0) over every model scored on that dataset. The statistics read scores only, never an
    accuracy, so they may include test pairs. A constant group (or a single model) gives 0.

    Args:
        zoo: the zoo whose scores table is read.
        pairs: columns `model, dataset`.
        metrics: metric names; one absent from the scores table is missing for every pair.

    Shapes: pairs [P] -> [P, S] float64 (S = len(metrics)), NaN where a pair lacks a score.
    """
    metrics = list(metrics)
    out = np.full((len(pairs), len(metrics)), np.nan)                      # [P, S]
    scores = zoo.scores[zoo.scores["metric"].isin(metrics)]
    if not len(scores) or not len(pairs):
        return out
    groups = scores.groupby(["dataset", "metric"])["value"]
    value = scores["value"].to_numpy(dtype=np.float64)
    mean = groups.transform("mean").to_numpy(dtype=np.float64)
    std = groups.transform("std", ddof=0).to_numpy(dtype=np.float64)
    z = np.where(std > STD_EPS, (value - mean) / np.maximum(std, STD_EPS), 0.0)
    wide = scores.assign(z=z).pivot(index=["model", "dataset"], columns="metric", values="z")
    idx = wide.index.get_indexer(pd.MultiIndex.from_frame(pairs[["model", "dataset"]]))
    found = idx >= 0
    for j, metric in enumerate(metrics):
        if metric in wide.columns:
            out[found, j] = wide[metric].to_numpy(dtype=np.float64)[idx[found]]
    return out


def score_features(z: np.ndarray) -> np.ndarray:
    """Standardised scores as model inputs: NaN → 0, then one missing indicator per metric.

    Shapes: z [P, S] -> [P, 2S] float32.
    """
    missing = np.isnan(z)
    return np.concatenate([np.where(missing, 0.0, z), missing], axis=1).astype(np.float32)


def build_graph(zoo: Zoo, train_pairs: pd.DataFrame, model_x: np.ndarray,
                dataset_x: np.ndarray, *, model_index: pd.Index, dataset_index: pd.Index,
                score_metrics: Sequence[str] | None = None) -> HeteroData:
    """The bipartite graph of `model_index` × `dataset_index` for message passing.

    Args:
        zoo: supplies the accuracies of `train_pairs` (`zoo.accuracy`; no other record is read)
            and the scores table.
        train_pairs: pairs (`model, dataset`) whose records become `RECORD` edges, in this order.
        model_x, dataset_x: node features, one row per id of `model_index`/`dataset_index`.
        model_index, dataset_index: the node ids; positions are node numbers.
        score_metrics: metrics of the score edges; None uses every metric of the zoo, an empty
            sequence adds no score edges.

    Returns:
        `HeteroData` as the module docstring describes, validated.

    Shapes: model_x [num_models, F_m], dataset_x [num_datasets, F_d] (F may be 0);
        RECORD edge_index [2, E], edge_attr [E, 1], edge_label [E];
        SCORE edge_index [2, E_s], edge_attr [E_s, 2S].

    Raises:
        ValueError: duplicate node ids, feature rows that do not match the index, a training pair
            naming an id outside the indexes, a duplicate training pair, a training pair without
            a record, or an unknown metric.
    """
    model_index, dataset_index = pd.Index(model_index), pd.Index(dataset_index)
    model_x = np.asarray(model_x, dtype=np.float32)
    dataset_x = np.asarray(dataset_x, dtype=np.float32)
    for what, index, x in (("model", model_index, model_x), ("dataset", dataset_index, dataset_x)):
        if index.has_duplicates:
            raise ValueError(f"build_graph: {what}_index must be unique; "
                             f"{index[index.duplicated()][0]!r} appears more than once")
        if x.ndim != 2 or len(x) != len(index):
            raise ValueError(f"build_graph: {what}_x must be 2-D with one row per id of "
                             f"{what}_index ({len(index)}), got shape {x.shape}")
    metrics = zoo.score_metrics if score_metrics is None else list(score_metrics)
    if unknown := sorted(set(metrics) - set(zoo.score_metrics)):
        raise ValueError(f"build_graph: unknown score metric(s) {unknown}; the zoo's scores "
                         f"table has {zoo.score_metrics}")

    src, dst = _positions(train_pairs, model_index, dataset_index, "train_pairs")
    if (dup := train_pairs.duplicated(["model", "dataset"])).any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValueError(f"build_graph: train_pairs has duplicate pair "
                         f"{train_pairs[['model', 'dataset']].iloc[i].tolist()}")
    accuracy = zoo.accuracy(train_pairs).astype(np.float32)                # [E]

    data = HeteroData()
    data[MODEL].x = torch.from_numpy(model_x)                              # [num_models, F_m]
    data[MODEL].num_nodes = len(model_index)
    data[DATASET].x = torch.from_numpy(dataset_x)                          # [num_datasets, F_d]
    data[DATASET].num_nodes = len(dataset_index)
    data[RECORD].edge_index = torch.from_numpy(np.stack([src, dst]))       # [2, E]
    data[RECORD].edge_attr = torch.from_numpy(accuracy[:, None])           # [E, 1]
    data[RECORD].edge_label = torch.from_numpy(accuracy)                   # [E]
    if metrics:
        scored = zoo.scores.loc[zoo.scores["metric"].isin(metrics), ["model", "dataset"]]
        scored = scored.drop_duplicates()
        scored = scored[scored["model"].isin(model_index)
                        & scored["dataset"].isin(dataset_index)].reset_index(drop=True)
        s_src, s_dst = _positions(scored, model_index, dataset_index, "scores")
        attr = score_features(standardize_scores(zoo, scored, metrics))    # [E_s, 2S]
        data[SCORE].edge_index = torch.from_numpy(np.stack([s_src, s_dst]))  # [2, E_s]
        data[SCORE].edge_attr = torch.from_numpy(attr.reshape(len(scored), 2 * len(metrics)))
    data = T.ToUndirected()(data)
    del data[REV_RECORD].edge_label  # the reverse copy is a message edge, not a target
    data.validate(raise_on_error=True)
    return data


def _positions(pairs: pd.DataFrame, model_index: pd.Index, dataset_index: pd.Index,
               what: str) -> tuple[np.ndarray, np.ndarray]:
    """Node numbers of the pairs' ids [P] each; ValueError naming the first unknown id."""
    check_known_ids(pairs, {"model": model_index, "dataset": dataset_index},
                    f"build_graph({what})", problem="is not in {kind}_index")
    return (model_index.get_indexer(pairs["model"].to_numpy()).astype(np.int64),
            dataset_index.get_indexer(pairs["dataset"].to_numpy()).astype(np.int64))


def message_graph(data: HeteroData, keep: torch.Tensor, edge_attr: torch.Tensor) -> HeteroData:
    """`build_graph`'s graph with only the record edges `keep`, in both directions.

    A predictor that must not see a pair's own record while predicting it passes messages over
    a subset of the training records; the subset keeps `ToUndirected`'s pairing of each record
    edge with its reverse (PyG's `edge_subgraph`), and both directions carry `edge_attr` (the
    predictor's own edge features, e.g. accuracies relative to a baseline). Nodes and score edges
    are unchanged; `data` is not modified.

    Shapes: keep [E_msg] int64 positions of `RECORD` edges; edge_attr [E_msg, D_e].
    """
    sub = data.edge_subgraph({RECORD: keep, REV_RECORD: keep})
    sub[RECORD].edge_attr = edge_attr
    sub[REV_RECORD].edge_attr = edge_attr
    return sub
