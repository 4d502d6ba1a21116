"""`GNNPredictor`: featurizers, graph, an ensemble of trained networks; fit, predict, embed."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from tpred.config import GNNConfig, NodeFeatureConfig
from tpred.data.tables import blank_rows
from tpred.errors import NotFittedError
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
from tpred.models._inputs import NodeFeatures, check_ids_in_zoo, encoder_for, resolve_metrics
from tpred.models.base import register
from tpred.models.gnn.baseline import (
    NUM_BASELINE_TERMS,
    Baseline,
    PriorNeighbours,
    level_shift,
    move_dataset_level,
)
from tpred.models.gnn.batch import (
    Kernel,
    RecordGraph,
    make_batch,
    message_baseline,
    num_gated_terms,
)
from tpred.models.gnn.minibatch import fit_large, predict_large, use_minibatch
from tpred.models.gnn.network import GNNNet
from tpred.models.gnn.target import from_target
from tpred.models.gnn.trainer import (
    cross_validation_folds,
    draw_message_split,
    member_seed,
    torch_context,
    train_cross_validated,
    train_network,
    validation_split,
)
from tpred.models.neighbours import self_excluded_similarity

if TYPE_CHECKING:
    from tpred.config import TrainConfig
    from tpred.data.zoo import Zoo

PAIR = ["model", "dataset"]


class GNNPredictor:
    """`gnn`: a graph network over the model–dataset graph, residual over an additive baseline.

    The decoder predicts the residual over an additive baseline (`baseline.fit_baseline`, with
    a feature prior for cold nodes) fitted on the message edges, plus a learned blend of the
    neighbour residuals (`batch.neighbour_terms`) and of attention neighbour terms
    (`network.NeighbourAttention`; not on the mini-batch path). A dataset without records then
    moves to the level of its feature prior averaged with its nearest datasets' level
    (`GNNConfig.level_after`), its ranking of models unchanged; see `tpred.models.gnn` for the
    parts.

    Args:
        config: hyper-parameters (`GNNConfig`).
        model_features, dataset_features: node features per type (featurizers fitted on the
            nodes of the training pairs only).
        encoder: text encoder for text columns (None when there are none).
        score_metrics: metrics used as score edges and decoder inputs; None uses every metric of
            the zoo; ignored when `config.use_scores` is False.
        seed: seeds the validation split, the edge splits, the initialisation and dropout;
            ensemble member k uses a seed derived from (seed, k).

    Attributes (after fit): `members_` (state dicts), `model_features_`, `dataset_features_`
        (fitted), `model_x_`, `dataset_x_` (features of the fitted zoo's nodes), `graph_` (the
        training graph; None on the mini-batch path), `metrics_`,
        `zoo_` (metadata and scores; its records are read only through `train_pairs_`),
        `train_pairs_`, `epochs_` (best epoch per member).
    """

    def __init__(self, config: GNNConfig | None = None,
                 model_features: NodeFeatureConfig | None = None,
                 dataset_features: NodeFeatureConfig | None = None, encoder=None,
                 score_metrics: Sequence[str] | None = None, seed: int = 0) -> None:
        self.config = config if config is not None else GNNConfig()
        self.model_features = model_features if model_features is not None \
            else NodeFeatureConfig()
        self.dataset_features = dataset_features if dataset_features is not None \
            else NodeFeatureConfig()
        self.encoder = encoder
        self.score_metrics = score_metrics
        self.seed = seed

    # ------------------------------------------------------------------------------- fit
    def fit(self, zoo: Zoo, train_pairs: pd.DataFrame) -> GNNPredictor:
        """Fit featurizers (training nodes only), then `config.ensemble` networks.

        Raises:
            ValueError: no training pairs, a training pair without a record, or an unknown
                score metric.
        """
        graph = self._prepare(zoo, train_pairs, "fit")
        if graph is None:  # a large graph: mini-batches (tpred/models/gnn/minibatch.py)
            fit_large(self, zoo, self.train_pairs_)
            return self
        self.members_, self.epochs_ = [], []
        with torch_context(self.config.num_threads):
            for k in range(self.config.ensemble):
                for state, epoch in self._fit_member(graph, member_seed(self.seed, k)):
                    self.members_.append(state)
                    self.epochs_.append(epoch)
        return self

    def _cross_validates(self) -> bool:
        """Whether `fit` cross-validates (`GNNConfig.cv_max_records`): a small training graph,
        trained on the full graph (the mini-batch path, forced by `gnn.batch_size`, trains
        `ensemble` networks with a single validation split), with at least two records per
        fold (fewer leave folds with nothing to validate on; such a graph is fitted as before,
        with no validation records at all)."""
        return (not self.minibatch_
                and 2 * self.config.cv_folds <= len(self.train_pairs_)
                <= self.config.cv_max_records)

    def _num_members(self) -> int:
        """Networks `fit` trains: `ensemble`, times `cv_folds` when it cross-validates."""
        return self.config.ensemble * (self.config.cv_folds if self._cross_validates() else 1)

    def _prepare(self, zoo: Zoo, train_pairs: pd.DataFrame, caller: str) -> RecordGraph | None:
        """Everything `fit` derives before training (deterministically): metrics, featurizers
        fitted on the training nodes, node features, their centres and the training graph
        (None when the graph is large and trains on mini-batches: `minibatch.use_minibatch`)."""
        if len(train_pairs) == 0:
            raise ValueError(f"GNNPredictor.{caller}: train_pairs is empty")
        train_pairs = train_pairs[PAIR].reset_index(drop=True)
        zoo.accuracy(train_pairs)  # raises, naming the pair, when one has no record
        self.metrics_ = (resolve_metrics(zoo, self.score_metrics, "GNNPredictor")
                         if self.config.use_scores else [])
        models = pd.unique(train_pairs["model"])
        datasets = pd.unique(train_pairs["dataset"])
        self.model_features_ = NodeFeatures(self.model_features, self.encoder).fit(zoo.models,
                                                                                   models)
        self.dataset_features_ = NodeFeatures(self.dataset_features, self.encoder).fit(
            zoo.datasets, datasets)
        self.zoo_, self.train_pairs_ = zoo, train_pairs
        self.model_x_, self.dataset_x_ = self._features(zoo)
        self.center_ = {  # node features are centred on the training nodes for similarities
            MODEL: self.model_x_[zoo.model_ids.get_indexer(models)].mean(0),
            DATASET: self.dataset_x_[zoo.dataset_ids.get_indexer(datasets)].mean(0)}
        self.minibatch_ = use_minibatch(self.config.batch_size, len(train_pairs),
                                        len(zoo.model_ids), len(zoo.dataset_ids))
        if self.minibatch_ and (self._kernel_names() != ["features"] or self.config.zmean_term):
            raise ValueError(
                f"GNNPredictor.{caller}: on the mini-batch path (gnn.batch_size set or a large "
                f"zoo) gnn.neighbor_kernels must be [features] or [features, scores] (the scores "
                f"kernel is left out there) and gnn.zmean_term false, got "
                f"{list(self.config.neighbor_kernels)}, {self.config.zmean_term}")
        # an option set away from its default that the mini-batch path does not have (the
        # default level_after is documented as off there, and a large zoo is not warned of it)
        if self.minibatch_ and (off := [
                f"gnn.{k}={getattr(self.config, k)}" for k in ("prior_neighbors", "level_after")
                if getattr(self.config, k) not in (0, getattr(GNNConfig(), k))]):
            warnings.warn(f"GNNPredictor.{caller}: {', '.join(off)} is not on the mini-batch "
                          f"path (gnn.batch_size set or a large zoo: {len(train_pairs)} training "
                          f"records) and has no effect on this fit", stacklevel=3)
        if self.minibatch_:
            self.num_features_ = {MODEL: self.model_x_.shape[1],
                                  DATASET: self.dataset_x_.shape[1]}
            self.graph_ = None
            return None
        graph = self._graph(zoo, train_pairs, self.model_x_, self.dataset_x_)
        self.num_features_ = {t: int(graph.data[t].x.shape[1]) for t in (MODEL, DATASET)}
        self.graph_ = graph  # `predict` in the fitted zoo has the same message edges
        return graph

    # ---------------------------------------------------------------- checkpoint support
    def learned_state(self) -> dict[str, Tensor]:
        """What `fit` learned that `restore` cannot re-derive: the networks' weights.

        Returns:
            `{"<member>.<parameter>": Tensor}` for every ensemble member (contiguous copies, as
            safetensors stores them) and `"epochs"`: the kept epoch per member [K] int64.

        Raises:
            NotFittedError: before `fit`.
        """
        if not hasattr(self, "members_"):
            raise NotFittedError("GNNPredictor is not fitted; call fit(zoo, train_pairs)")
        out = {f"{k}.{name}": t.detach().clone().contiguous()
               for k, state in enumerate(self.members_) for name, t in state.items()}
        out["epochs"] = torch.tensor(self.epochs_, dtype=torch.int64)
        return out

    def restore(self, zoo: Zoo, train_pairs: pd.DataFrame,
                state: dict[str, Tensor]) -> GNNPredictor:
        """`fit` without training: what `fit` derives deterministically is derived again from
        (zoo, train_pairs), the networks' weights come from `state` (`learned_state` of a
        predictor with these hyper-parameters fitted on these pairs).

        Raises:
            ValueError: `state` lacks a member's weights or holds weights of another network.
        """
        self._prepare(zoo, train_pairs, "restore")
        members: list[dict[str, Tensor]] = [{} for _ in range(self._num_members())]
        for key, tensor in state.items():
            if key == "epochs":
                continue
            k, _, name = key.partition(".")
            if not k.isdigit() or int(k) >= len(members):
                raise ValueError(f"GNNPredictor.restore: unexpected weight {key!r} for "
                                 f"{len(members)} networks (gnn.ensemble "
                                 f"{self.config.ensemble}, times gnn.cv_folds when the "
                                 f"training pairs are at most gnn.cv_max_records)")
            members[int(k)][name] = tensor
        net = self._net()
        for k, member in enumerate(members):
            try:
                net.load_state_dict(member, strict=True)
            except RuntimeError as err:
                raise ValueError(f"GNNPredictor.restore: the weights of member {k} do not fit "
                                 f"this network ({' '.join(str(err).split())[:300]})") from None
        self.members_ = members
        self.epochs_ = [int(e) for e in state.get("epochs", torch.zeros(len(members)))]
        return self

    def _fit_member(self, g: RecordGraph, seed: int) -> list[tuple[dict[str, Tensor], int]]:
        """One ensemble member: validation split, epoch draws, `train_network`; or, on a small
        graph (`_cross_validates`), cross-validation folds and `train_cross_validated`, one
        network per fold.

        Returns:
            [(state dict, kept epoch)] per network trained.
        """
        cfg = self.config
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        pair_scores = self._pair_scores(self.zoo_, g)                          # [E, 2S]
        batch = functools.partial(make_batch, g, pair_scores=pair_scores,
                                  neighbors=cfg.neighbors)

        def drawer(fit_idx: np.ndarray, rng: np.random.Generator):
            def draw():
                msg, sup = draw_message_split(g.rec_src, g.rec_dst, fit_idx,
                                              len(g.model_index), len(g.dataset_index), rng)
                return batch(msg, target=sup)
            return draw

        if self._cross_validates():
            fold = cross_validation_folds(len(g.rec_dst), cfg.cv_folds, rng)
            nets, draws, val_batches = [], [], []
            for k, fold_rng in enumerate(rng.spawn(cfg.cv_folds)):
                fit_idx, val_idx = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
                nets.append(self._net())
                draws.append(drawer(fit_idx, fold_rng))
                val_batches.append(batch(fit_idx, target=val_idx))
            return train_cross_validated(nets, draws, val_batches, cfg)
        net = self._net()
        is_val = validation_split(g.rec_dst, cfg.val_fraction, rng)
        fit_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
        val_batch = batch(fit_idx, target=val_idx) if len(val_idx) else None
        return [train_network(net, drawer(fit_idx, rng), val_batch, cfg)]

    # ---------------------------------------------------------------------------- predict
    def predict(self, pairs: pd.DataFrame, zoo: Zoo | None = None, *,
                return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted accuracies in [0, 1] [P] (the mean over ensemble members).

        Args:
            pairs: columns `model, dataset`.
            zoo: None predicts in the fitted zoo with the training records as message edges.
                A zoo (e.g. the fitted zoo plus new models/datasets) is used inductively: its
                nodes go through the fitted featurizers, its scores become score edges and its
                records message edges. Either way the records of `pairs` themselves are left
                out of the message edges: a pair's accuracy is never the input of its own
                prediction (so ask for the unknown pairs; asking for every pair at once predicts
                every pair as if nothing were known).
            return_std: also return the standard deviation across ensemble members [P]
                (zeros for a single member).

        Raises:
            NotFittedError: before `fit`.
            ValueError: a pair naming an id the zoo does not describe.
        """
        if not hasattr(self, "members_"):
            raise NotFittedError("GNNPredictor is not fitted; call fit(zoo, train_pairs)")
        pairs = pairs[PAIR].reset_index(drop=True)
        training_edges = zoo is None  # the message edges are the training records
        if training_edges:
            zoo, known = self.zoo_, self.train_pairs_
        else:
            if unknown := sorted(set(self.metrics_) - set(zoo.score_metrics)):
                raise ValueError(f"GNNPredictor.predict: the zoo lacks score metric(s) {unknown} "
                                 f"the predictor was fitted with ({self.metrics_})")
            known = zoo.known_pairs()
        check_ids_in_zoo(pairs, zoo, "GNNPredictor.predict")
        model_x, dataset_x = ((self.model_x_, self.dataset_x_) if zoo is self.zoo_
                              else self._features(zoo))
        own = pd.MultiIndex.from_frame(known).isin(pd.MultiIndex.from_frame(pairs))
        if getattr(self, "minibatch_", False):
            stacked = from_target(predict_large(self, zoo, known[~own].reset_index(drop=True),
                                                pairs, model_x, dataset_x),
                                  *self._target_scale())                       # [K, P]
            return (stacked.mean(0), stacked.std(0)) if return_std else stacked.mean(0)
        g = (self._training_graph() if training_edges and not own.any()
             else self._graph(zoo, known[~own].reset_index(drop=True), model_x, dataset_x))
        src = g.model_index.get_indexer(pairs["model"].to_numpy())
        dst = g.dataset_index.get_indexer(pairs["dataset"].to_numpy())
        scores = score_features(standardize_scores(zoo, pairs, self.metrics_))  # [P, 2S]
        preds = []
        msg = np.arange(len(g.rec_acc))
        # the message baseline, fitted once when the level move reads it too
        base = message_baseline(g, msg) if self.config.level_after else None
        with torch_context(self.config.num_threads), torch.no_grad():
            batch = make_batch(g, msg, scores, neighbors=self.config.neighbors,
                               query=(src, dst), base=base)
            net = self._net()
            for state in self.members_:
                net.load_state_dict(state)
                net.eval()
                preds.append(net(batch).numpy().astype(np.float64))
        z = np.stack(preds)                                                   # [K, P]
        if (squeeze := self.config.logit_squeeze) and self.config.level_after:
            # on the logit scale the move is a shift of z, before the inverse keeps it in [0, 1]
            if (shift := self._level_shift(zoo, g, base)) is not None:
                z = z + np.nan_to_num(shift)[dst]
        stacked = from_target(z, *self._target_scale())                       # [K, P]
        mean, std = stacked.mean(axis=0), stacked.std(axis=0)
        if self.config.level_after and not squeeze:
            mean, std = self._move_level(zoo, g, base, mean, std, dst)
        return (mean, std) if return_std else mean

    def embed(self, zoo: Zoo | None = None, *, member: int = 0
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Node embeddings (the skip-combined encoder output the decoder reads).

        Args:
            zoo: None embeds the fitted zoo with its training records as message edges; a zoo
                (e.g. with new nodes) is embedded inductively with all its records as edges.
            member: which ensemble member's network.

        Shapes: -> models [M, Z], datasets [D, Z] (Z = hidden_channels · (num_layers + 1)).
        """
        if not hasattr(self, "members_"):
            raise NotFittedError("GNNPredictor is not fitted; call fit(zoo, train_pairs)")
        if zoo is None:
            zoo, g = self.zoo_, self._training_graph()
        else:
            g = self._graph(zoo, zoo.known_pairs().reset_index(drop=True), *self._features(zoo))
        one = np.zeros(1, dtype=np.int64)
        scores = np.zeros((1, 2 * len(self.metrics_)))
        batch = make_batch(g, np.arange(len(g.rec_acc)), scores, neighbors=self.config.neighbors,
                           query=(one, one))
        with torch_context(self.config.num_threads), torch.no_grad():
            net = self._net()
            net.load_state_dict(self.members_[member])
            net.eval()
            z = net.encode(batch.graph)
        return (pd.DataFrame(z[MODEL].numpy(), index=pd.Index(zoo.model_ids, name="model")),
                pd.DataFrame(z[DATASET].numpy(),
                             index=pd.Index(zoo.dataset_ids, name="dataset")))

    def predict_std(self, pairs: pd.DataFrame, zoo: Zoo | None = None) -> np.ndarray:
        """Standard deviation of the members' predictions [P] (0 for `ensemble=1`)."""
        return self.predict(pairs, zoo, return_std=True)[1]

    # ---------------------------------------------------------------------------- helpers
    def _training_graph(self) -> RecordGraph:
        """The graph of the fitted zoo with the training records as message edges: the one
        `fit` built (`graph_`), or built again for a predictor unpickled from before it was
        kept."""
        if getattr(self, "graph_", None) is None:
            self.graph_ = self._graph(self.zoo_, self.train_pairs_, self.model_x_,
                                      self.dataset_x_)
        return self.graph_

    def level_moves(self, zoo: Zoo | None = None) -> pd.Series:
        """What `config.level_after` does to each dataset without records of `zoo` (default:
        the fitted one, its training records as edges; a zoo: all its records): the shift
        added to its predictions before the soft clip, NaN for a dataset that is not moved
        because a configured metadata cell is blank. A dataset with records is not listed.
        With `config.logit_squeeze` the shift is added to the logit, and what is reported is
        its change in accuracy units of the dataset's level (its baseline for a model of
        average effect, mu + dataset effect): a model far from that level moves less.
        Empty when the option is off, on the mini-batch path, or without dataset features.
        The shift comes from the baselines alone, so every member of an ensemble fitted on
        the same records gives the same one.

        Shapes: -> [datasets without records], float, indexed by dataset id.
        """
        if not hasattr(self, "members_"):
            raise NotFittedError("GNNPredictor is not fitted; call fit(zoo, train_pairs)")
        if not self.config.level_after or getattr(self, "minibatch_", False):
            return no_level_moves()
        if zoo is None:
            zoo, g = self.zoo_, self._training_graph()
        else:
            g = self._graph(zoo, zoo.known_pairs().reset_index(drop=True), *self._features(zoo))
        base = message_baseline(g, np.arange(len(g.rec_acc)))
        shift = self._level_shift(zoo, g, base)                               # [D]
        if shift is None:
            return no_level_moves()
        if self.config.logit_squeeze:
            level = base.mu + base.dataset_effect                             # [D], logit
            scale = self._target_scale()
            shift = from_target(level + shift, *scale) - from_target(level, *scale)
        new = base.dataset_degree == 0                                        # [D]
        return pd.Series(shift[new], index=pd.Index(g.dataset_index[new], name="dataset"),
                         name="shift")

    def _level_target(self, zoo: Zoo, g: RecordGraph) -> tuple[Baseline, np.ndarray] | None:
        """The baseline of all of `g`'s records with the dataset prior's `level_after`
        neighbours by the features kernel, and which datasets may move (no blank cell in a
        configured metadata column, [D] bool); None without a features kernel.

        A dataset with a blank cell is not moved: its features are partly imputed (a median,
        the `missing` category), so its nearest datasets are not the ones like it. On inner
        splits of zoos with 20 % of the cells blank, moving those too raised cold-dataset
        RMSE on digits (bench/README.md, "The cold-dataset level").
        """
        near = g.features_kernel
        if near is None or near.dataset_order is None:          # no dataset features: no move
            return None
        complete = ~blank_rows(zoo.datasets.loc[g.dataset_index], self.dataset_features)  # [D]
        after = {**g.prior_neighbours, DATASET: PriorNeighbours(
            near.dataset_order, near.dataset_weight, self.config.level_after)}
        return message_baseline(g, np.arange(len(g.rec_acc)), after), complete

    def _level_shift(self, zoo: Zoo, g: RecordGraph, base: Baseline) -> np.ndarray | None:
        """Each dataset's `level_after` shift from `base` (`baseline.level_shift`: NaN for one
        that is not moved), on the scale the network learns on; None without a features
        kernel (nothing moves).

        Shapes: -> [D].
        """
        target = self._level_target(zoo, g)
        return None if target is None else level_shift(base, *target)

    def _move_level(self, zoo: Zoo, g: RecordGraph, base: Baseline, mean: np.ndarray,
                    std: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`config.level_after`: the predictions of pairs on datasets `dst` without records
        moved from the level of `base`, the baseline the network read (all of `g`'s records
        as message edges), to the level with the dataset prior's `level_after` neighbours by the
        features kernel (`_level_target`, `baseline.move_dataset_level`).

        Shapes: mean, std, dst [P] -> [P], [P].
        """
        target = self._level_target(zoo, g)
        if target is None:
            return mean, std
        after, complete = target
        return move_dataset_level(mean, std, base, after, dst, movable=complete)

    def _net(self) -> GNNNet:
        s2 = 2 * len(self.metrics_)
        edge_dims: dict[tuple[str, str, str], int] = {RECORD: 2, REV_RECORD: 2}
        if self._edge_metrics():
            edge_dims.update({SCORE: s2, REV_SCORE: s2})
        # the mini-batch path has the fixed neighbour terms only: its batches hold no dense
        # residual table or node orders to gather attention candidates or levels from
        config = (dataclasses.replace(self.config, attention=0, level_terms=False)
                  if getattr(self, "minibatch_", False) else self.config)
        gated = num_gated_terms(len(self._kernel_names()), config.zmean_term,
                                config.level_terms)
        return GNNNet(self.num_features_, edge_dims, s2 + NUM_BASELINE_TERMS + gated, config,
                      num_gated=gated)

    def _kernel_names(self) -> list[str]:
        """The similarity kernels of the neighbour terms on this fit: `config.neighbor_kernels`
        without `scores` where it would be all zeros (a zoo without score metrics) or where the
        batches cannot hold it (the mini-batch path, which computes the `features` kernel only,
        as it has no attention terms)."""
        keep_scores = bool(self.metrics_) and not getattr(self, "minibatch_", False)
        return [k for k in self.config.neighbor_kernels if k != "scores" or keep_scores]

    def _edge_metrics(self) -> list[str]:
        """The metrics of the score edges (none when `config.score_edges` is off)."""
        return self.metrics_ if self.config.score_edges else []

    def _features(self, zoo: Zoo) -> tuple[np.ndarray, np.ndarray]:
        """Every node of `zoo` through the fitted featurizers: [num_models, F_m], [.., F_d]."""
        return (self.model_features_.transform(zoo.models, zoo.model_ids),
                self.dataset_features_.transform(zoo.datasets, zoo.dataset_ids))

    def _graph(self, zoo: Zoo, edge_pairs: pd.DataFrame, model_x: np.ndarray,
               dataset_x: np.ndarray) -> RecordGraph:
        """`zoo`'s graph with `edge_pairs` as records (`build_graph`) and its similarities."""
        data = build_graph(zoo, edge_pairs, model_x, dataset_x, model_index=zoo.model_ids,
                           dataset_index=zoo.dataset_ids, score_metrics=self._edge_metrics())
        x = {MODEL: np.asarray(model_x, np.float64), DATASET: np.asarray(dataset_x, np.float64)}
        gram = {t: (v @ v.T if v.shape[1] else None) for t, v in x.items()}
        features = {t: self_excluded_similarity(v - self.center_[t]) for t, v in x.items()}
        names = self._kernel_names()
        scores = (score_similarity(zoo, self.metrics_)
                  if {"scores", "features+scores"} & set(names) else {MODEL: None, DATASET: None})
        kernels = []
        for name in names:
            sim = {t: _combine(features[t] if name != "scores" else None,
                               scores[t] if name != "features" else None)
                   for t in (MODEL, DATASET)}
            kernels.append(Kernel(sim[DATASET], sim[MODEL]))
        prior, near = {}, None
        if self.config.prior_neighbors or self.config.level_after:
            # the neighbours of the prior's level: the features kernel's (one built if the
            # neighbour terms have none)
            near = (kernels[names.index("features")] if "features" in names
                    else Kernel(features[DATASET], features[MODEL]))
        if k := self.config.prior_neighbors:
            for t, order, weight in ((MODEL, near.model_order, near.model_weight),
                                     (DATASET, near.dataset_order, near.dataset_weight)):
                prior[t] = None if order is None else PriorNeighbours(order, weight, k)
        return RecordGraph(data, zoo.model_ids, zoo.dataset_ids, self._target_scale(), gram,
                           kernels, zmean_term=self.config.zmean_term,
                           attention=self.config.attention, level_terms=self.config.level_terms,
                           prior_neighbours=prior, features_kernel=near)

    def _target_scale(self) -> tuple[float, float]:
        """The learning scale (`gnn/target.py`): `config.logit_squeeze`, `config.logit_scale`."""
        return self.config.logit_squeeze, self.config.logit_scale

    def _pair_scores(self, zoo: Zoo, g: RecordGraph) -> np.ndarray:
        """Decoder score inputs of every record edge of `g` [E, 2S]."""
        pairs = pd.DataFrame({"model": g.model_index[g.rec_src],
                              "dataset": g.dataset_index[g.rec_dst]})
        return score_features(standardize_scores(zoo, pairs, self.metrics_))


def no_level_moves() -> pd.Series:
    """`GNNPredictor.level_moves` when nothing is moved (the option off, or a predictor
    without it; `Run.level_moves`)."""
    return pd.Series(dtype=float, name="shift", index=pd.Index([], name="dataset"))


def score_similarity(zoo: Zoo, metrics: Sequence[str]) -> dict[str, np.ndarray | None]:
    """Cosine of score vectors with the diagonal at -inf, per node type [N_t, N_t] (the
    `scores` kernel of the neighbour terms).

    A dataset's vector is its z-scored scores (`standardize_scores`) against every model of
    `zoo`, a model's its z-scored scores on every dataset (missing scores 0), as `knn`
    does. Scores need no fine-tuning, so every node's may be used. None without metrics.
    """
    if not metrics:
        return {MODEL: None, DATASET: None}
    num_m, num_d, num_s = zoo.num_models, zoo.num_datasets, len(metrics)
    grid = pd.DataFrame({"model": np.repeat(zoo.model_ids.to_numpy(dtype=object), num_d),
                         "dataset": np.tile(zoo.dataset_ids.to_numpy(dtype=object), num_m)})
    z = np.nan_to_num(standardize_scores(zoo, grid, metrics)).reshape(num_m, num_d, num_s)
    return {MODEL: self_excluded_similarity(z.reshape(num_m, -1)),
            DATASET: self_excluded_similarity(z.transpose(1, 0, 2).reshape(num_d, -1))}


def _combine(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """The mean of two similarities, or the one that exists (None if neither)."""
    if a is None or b is None:
        return a if b is None else b
    return (a + b) / 2


@register("gnn")
def _make_gnn(cfg: TrainConfig) -> GNNPredictor:
    return GNNPredictor(cfg.gnn, cfg.model_features, cfg.dataset_features,
                        encoder=encoder_for(cfg), score_metrics=cfg.score_metrics)
