"""Training one gnn network: edge splits that mimic the protocols, EMA weights, early stopping.

`train_network` is the loop; it asks a `draw` callable for each epoch's batch, so the way batches
are made (full graph here) can change without touching it. Per member (`GNNPredictor`):

- a validation split (`validation_split`, `val_fraction` of the training records) is never a
  message edge while training and decides early stopping; test pairs are never edges at all.
  On a small graph (`GNNConfig.cv_max_records`) cross-validation folds replace the single
  split: `train_cross_validated` trains one network per fold (each a `_Run`, in lock-step)
  and stops them together on the pooled validation loss;
- the rest is re-split every epoch into message and supervised edges, disjoint
  (`draw_message_split`, as PyG's link prediction with `disjoint_train_ratio`), so a pair's own
  accuracy is never the input when it is the target. Each dataset draws its own supervised share
  q ~ U(0, 1), so the network sees datasets with every number of known models, cold ones
  included; each model loses all its message edges with probability `MODEL_COLD_PROB`;
- the output weights of the simple methods' corrections and of the attention terms start at
  their non-negative least-squares fit on a few draws (`init_gates`): most fits stop after
  20-90 epochs, and Adam moves a weight by about lr per step, so the start decides much of
  where the network ends;
- the weights validated (every `GNNConfig.val_every` epochs) and kept are an exponential
  moving average of the trained ones (`GNNConfig.ema_decay`).

Deterministic on CPU: `torch_context` makes a private torch RNG state, deterministic algorithms
and a fixed thread count (one by default: the graphs are small, and a second thread costs more
in synchronisation than it saves, badly so on a busy machine).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import nnls
from torch import Tensor

from tpred.config import GNNConfig
from tpred.graph import DATASET, MODEL
from tpred.models.gnn.batch import GNNBatch
from tpred.models.gnn.network import GNNNet

#: per epoch, the probability that a model's records are all supervised (none a message edge),
#: so that the network also learns cold models
MODEL_COLD_PROB = 0.1
#: the neighbour terms' output weights start at a least-squares fit (`fit_gate`) over this
#: many training draws, with this ridge (relative to the number of pairs)
GATE_FIT_DRAWS = 5
GATE_RIDGE = 1e-3
#: share of the validation records that are whole datasets (cold) rather than single records
VAL_COLD_SHARE = 0.0
#: a validation loss must fall by more than this to count as an improvement
MIN_IMPROVEMENT = 1e-7


class _Run:
    """One network in training: its optimiser, its batch draws and the moving average of its
    weights (what is validated and kept)."""

    def __init__(self, net: GNNNet, draw: Callable[[], GNNBatch], config: GNNConfig) -> None:
        self.net, self.draw, self.config = net, draw, config
        # fused: one kernel updates every parameter (on CPU torch defaults to a Python loop per
        # tensor; `foreach` groups them but still costs twice the fused step here). The same
        # arithmetic up to rounding (bench/README.md, "Validating every other epoch, and a
        # fused Adam step")
        self.opt = torch.optim.Adam(net.parameters(), lr=config.lr,
                                    weight_decay=config.weight_decay, fused=True)
        if config.residual and (len(net.neighbour_gate) or net.attention is not None):
            init_gates(net, [draw() for _ in range(GATE_FIT_DRAWS)],
                       positive=config.gate_positive)
        self.start_gate = net.neighbour_gate.detach().clone()
        self.avg = copy.deepcopy(net)
        self.avg_params, self.net_params = list(self.avg.parameters()), list(net.parameters())
        # the modes are set once: `train()` / `eval()` walk every submodule, and nothing in the
        # loop changes them
        net.train()
        self.avg.eval()

    def step(self) -> None:
        """One epoch: a fresh batch, one Adam step, the moving average updated."""
        batch = self.draw()
        self.opt.zero_grad()
        pred = self.net(batch)
        loss = F.mse_loss(pred, batch.y)
        if self.config.rank_loss:
            loss = loss + self.config.rank_loss * ranking_loss(pred, batch.y, batch.dst)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.avg_params, self.net_params, 1.0 - self.config.ema_decay)

    def val_loss(self, val_batch: GNNBatch) -> float:
        """MSE of the averaged weights on `val_batch`."""
        with torch.inference_mode():
            return float(F.mse_loss(self.avg(val_batch), val_batch.y))

    def state(self) -> dict[str, Tensor]:
        """A copy of the averaged weights."""
        return {k: v.detach().clone() for k, v in self.avg.state_dict().items()}


def train_network(net: GNNNet, draw: Callable[[], GNNBatch], val_batch: GNNBatch | None,
                  config: GNNConfig) -> tuple[dict[str, Tensor], int]:
    """Train `net` on `draw()`'s batches (MSE, Adam); return the kept weights and their epoch.

    The output weights of the gated and the attention terms start at their joint least-squares
    fit over `GATE_FIT_DRAWS` draws (`init_gates`; residual mode; non-negative when
    `config.gate_positive`). The loss is the MSE, plus
    `config.rank_loss` × `ranking_loss` when that is set. Each epoch trains on one fresh batch
    and updates the moving average of the weights; every `config.val_every` epochs the average
    is scored on `val_batch`, and training stops after `config.patience` epochs without an
    improvement by `config.min_delta` (`EarlyStopping`); the best average is kept (then, with
    `config.val_shrink`, shrunk toward the start: `shrink_to_start`). Without a validation
    batch the average after `max_epochs` epochs is kept.

    Returns:
        (state dict of the kept averaged network, its 1-based epoch).
    """
    run = _Run(net, draw, config)
    best, best_epoch = None, 0
    stopper = EarlyStopping(-(-config.patience // config.val_every), config.min_delta)
    for epoch in range(config.max_epochs):
        run.step()
        if val_batch is None or (epoch + 1) % config.val_every:
            continue
        if stopper.update(run.val_loss(val_batch)):
            best_epoch, best = epoch + 1, run.state()
        if stopper.stop:
            break
    if best is None:
        best, best_epoch = run.state(), config.max_epochs
    if config.val_shrink is not None and config.residual and val_batch is not None:
        run.avg.load_state_dict(best)
        best = shrink_to_start(run.avg, val_batch, run.start_gate, config.val_shrink)
    return best, best_epoch


def train_cross_validated(nets: list[GNNNet], draws: list[Callable[[], GNNBatch]],
                          val_batches: list[GNNBatch], config: GNNConfig
                          ) -> list[tuple[dict[str, Tensor], int]]:
    """Train K networks in lock-step, one per cross-validation fold, and stop them together.

    Network k trains as in `train_network` on `draws[k]` (the records outside fold k) and is
    validated on `val_batches[k]` (fold k). Early stopping watches the pooled validation MSE
    over all K folds, so every record is a validation record once: on a zoo so small that a
    single split holds a handful of records, one split's loss is mostly noise, and the epoch it
    picks is too. The start (epoch 0: the baseline and the least-squares blend of the
    neighbour terms) is a candidate like every validated epoch, so where training does not
    beat it on the pooled folds, the start is kept. Every network's weights of the best pooled
    epoch are kept: the K networks are the members of a cross-fitted ensemble.

    Returns:
        [(state dict of network k at the best pooled epoch, that epoch)] for k in 0..K−1.
    """
    runs = [_Run(net, draw, config) for net, draw in zip(nets, draws, strict=True)]
    sizes = np.array([len(v.y) for v in val_batches], dtype=np.float64)

    def pooled() -> float:
        losses = np.array([r.val_loss(v) for r, v in zip(runs, val_batches, strict=True)])
        return float(losses @ sizes / sizes.sum())

    stopper = EarlyStopping(-(-config.patience // config.val_every), config.min_delta)
    stopper.update(pooled())
    best, best_epoch = [r.state() for r in runs], 0
    for epoch in range(config.max_epochs):
        for run in runs:
            run.step()
        if (epoch + 1) % config.val_every:
            continue
        if stopper.update(pooled()):
            best, best_epoch = [r.state() for r in runs], epoch + 1
        if stopper.stop:
            break
    return [(state, best_epoch) for state in best]


def cross_validation_folds(num_edges: int, num_folds: int, rng: np.random.Generator
                           ) -> np.ndarray:
    """Fold id in [0, num_folds) of each record edge [E], the folds as equal as they can be."""
    return rng.permutation(np.arange(num_edges) % num_folds)


def shrink_to_start(net: GNNNet, val_batch: GNNBatch, start_gate: Tensor, z: float = 0.0
                    ) -> dict[str, Tensor]:
    """The weights of `net` with what training added shrunk toward the start, on held-out
    records.

    The start is T = base + gated @ `start_gate` (the baseline and the least-squares blend of
    the fixed neighbour terms, `init_gates`). With d = net − T and r = y − T over `val_batch`'s
    V pairs, α = ⟨d, r⟩ / ‖d‖² less z standard errors (√(‖r − α d‖² / (V − 1) / ‖d‖²)), clipped
    to [0, 1]; the output becomes T + α · d. In residual mode the output is base plus terms
    linear in the last weights, so that is exact with gate ← start_gate + α (gate −
    start_gate) and the attention gates and the decoder's last layer times α.

    Shapes: start_gate [G] -> state dict (`net` is changed in place).
    """
    net.eval()
    start = val_batch.base + val_batch.gated @ start_gate                     # [V]
    with torch.inference_mode():
        delta = (net(val_batch) - start).double()                              # [V]
    resid = (val_batch.y - start).double()                                     # [V]
    denom = float(delta @ delta)
    alpha = 1.0
    if denom > 0:
        alpha = float(delta @ resid) / denom
        if z and len(delta) > 1:
            alpha -= z * (float(((resid - alpha * delta) ** 2).sum()) / (len(delta) - 1)
                          / denom) ** 0.5
        alpha = min(max(alpha, 0.0), 1.0)
    with torch.no_grad():
        net.neighbour_gate.copy_(start_gate + alpha * (net.neighbour_gate - start_gate))
        net.decoder[-1].weight.mul_(alpha)
        net.decoder[-1].bias.mul_(alpha)
        if net.attention is not None:
            for module in net.attention.values():
                module.gate.mul_(alpha)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


class EarlyStopping:
    """Early stopping on a validation loss: which epoch is the best, and when to stop.

    A loss below the best by more than `MIN_IMPROVEMENT` is a new best (its weights are kept).
    `patience` counts the epochs since the loss last fell below `(1 − min_delta)` times the loss
    of the previous such epoch: with `min_delta` 0 that is any new best; with 0.01, a fit whose
    loss still creeps down by less than 1 % over `patience` epochs stops (the network has
    converged; what is left is the noise of the per-epoch draws), while one that is still
    learning (1 % or more per `patience` epochs) runs on to `max_epochs`. Written here because
    the loop is plain torch (Lightning's `EarlyStopping` has an absolute `min_delta` that also
    decides which epoch is the best).

    Args:
        patience: epochs without a `min_delta` improvement before `stop` is set.
        min_delta: the relative improvement that resets the patience count, in [0, 1).
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best = self.anchor = np.inf
        self.bad = 0
        self.stop = False

    def update(self, loss: float) -> bool:
        """Record one epoch's validation loss; True when it is a new best."""
        improved = loss < self.best - MIN_IMPROVEMENT
        if improved:
            self.best = loss
        if loss < self.anchor * (1.0 - self.min_delta) - MIN_IMPROVEMENT:
            self.anchor, self.bad = loss, 0
        else:
            self.bad += 1
            self.stop = self.bad >= self.patience
        return improved


def ranking_loss(pred: Tensor, y: Tensor, group: Tensor) -> Tensor:
    """Top-weighted pairwise logistic loss within groups (datasets), scale-free per group.

    For every two pairs i, j of one group with y_i > y_j: softplus(−(p_i − p_j) / s_g), weighted
    by 1/(1 + r_i) + 1/(1 + r_j) with r the 0-based rank of the true accuracy in the group (the
    hyperbolic weights of weighted τ), where s_g is the group's std of y (so every dataset
    counts alike, as in the per-dataset rank metrics). The weighted mean over all such pairs;
    0 when there are none. RankNet's loss with weighted τ's weights: written here because the
    pairs are per group and change every epoch.

    Shapes: pred, y, group [P] -> scalar.
    """
    g, yv = group.numpy(), y.detach().numpy().astype(np.float64)
    order = np.lexsort((-yv, g))                                   # by group, y descending
    g_sorted = g[order]
    starts = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    sizes = np.diff(np.r_[starts, len(g)])
    rank = np.arange(len(g)) - np.repeat(starts, sizes)            # rank within the group
    first, second, scale = [], [], []
    for start, size in zip(starts, sizes, strict=True):
        if size < 2:
            continue
        idx = order[start:start + size]
        std = yv[idx].std()
        if std <= 0:
            continue
        a, b = np.triu_indices(size, k=1)                          # a ranks above b
        first.append(start + a)
        second.append(start + b)
        scale.append(np.full(len(a), std))
    if not first:
        return pred.sum() * 0.0
    a, b, s = np.concatenate(first), np.concatenate(second), np.concatenate(scale)
    keep = yv[order[a]] > yv[order[b]]                              # ties carry no order
    a, b, s = a[keep], b[keep], s[keep]
    weight = 1.0 / (1.0 + rank[a]) + 1.0 / (1.0 + rank[b])
    i, j = torch.from_numpy(order[a]), torch.from_numpy(order[b])
    margin = (pred[i] - pred[j]) / torch.from_numpy(s.astype(np.float32))
    w = torch.from_numpy((weight / weight.sum()).astype(np.float32))
    return (w * F.softplus(-margin)).sum()


def init_gates(net: GNNNet, batches: list[GNNBatch], *, positive: bool = False) -> None:
    """Set the output weights of the gated terms and of the attention terms (when the network
    has them) to their joint least-squares values on `batches` (`fit_gate`; ≥ 0 when
    `positive`)."""
    with torch.no_grad():
        columns = [b.gated for b in batches]
        if net.attention is not None:
            net.eval()
            columns = [torch.cat([c, net.attention_terms(net.encode(b.graph), b)], dim=1)
                       for c, b in zip(columns, batches, strict=True)]
            net.train()
        gate = fit_gate(batches, columns, positive=positive)
        fixed = len(net.neighbour_gate)
        net.neighbour_gate.copy_(gate[:fixed])
        if net.attention is not None:  # the columns of `attention_terms`: dataset heads, model
            dataset_side, model_side = gate[fixed:].chunk(2)
            net.attention[DATASET].gate.copy_(dataset_side)
            net.attention[MODEL].gate.copy_(model_side)


def fit_gate(batches: list[GNNBatch], columns: list[Tensor] | None = None, *,
             positive: bool = False) -> Tensor:
    """Least-squares weights of the gated terms for the residual y − base [G].

    Stacked over training draws, with ridge `GATE_RIDGE` × pairs; the network then starts at
    base + gated @ gate, the best linear blend of the baseline and the simple methods'
    corrections on draws that mimic the protocols, instead of a fixed guess (the gate then
    trains with the rest). This is stacking: the draws are the inner folds. With `positive`
    the weights are constrained to ≥ 0, as Breiman's stacked regressions constrain theirs: the
    terms are collinear corrections toward similar nodes (the attention heads differ only in
    sharpness), and an unconstrained fit on a small zoo gives some of them negative weights
    that only fit noise.

    Shapes: columns [P_d, G] per draw (default: each batch's `gated`) -> [G].
    """
    gated = torch.cat(columns if columns is not None
                      else [b.gated for b in batches]).double()              # [P, G]
    resid = torch.cat([b.y - b.base for b in batches]).double()            # [P]
    ridge = GATE_RIDGE * len(gated)
    if positive:
        # the same ridge objective under w ≥ 0, as the least squares of the augmented system
        # [X; √ridge · I] w ≈ [r; 0]: scipy's Lawson–Hanson NNLS (torch has none)
        a = np.vstack([gated.numpy(), np.sqrt(ridge) * np.eye(gated.shape[1])])
        b = np.concatenate([resid.numpy(), np.zeros(gated.shape[1])])
        return torch.from_numpy(nnls(a, b)[0]).float()
    gram = gated.T @ gated + ridge * torch.eye(gated.shape[1], dtype=torch.float64)
    return torch.linalg.solve(gram, gated.T @ resid).float()


def draw_message_split(rec_src: np.ndarray, rec_dst: np.ndarray, fit_idx: np.ndarray,
                       num_models: int, num_datasets: int, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's split of the record edges `fit_idx` into (message, supervised), disjoint.

    Each dataset draws its supervised share q ~ U(0, 1); each model is cold (all its edges
    supervised) with probability `MODEL_COLD_PROB`; at least one edge is supervised.

    Shapes: rec_src, rec_dst [E]; fit_idx [F] -> two position arrays partitioning fit_idx.
    """
    q = rng.random(num_datasets)                                  # supervised share per dataset
    cold_model = rng.random(num_models) < MODEL_COLD_PROB
    sup = (rng.random(len(fit_idx)) < q[rec_dst[fit_idx]]) | cold_model[rec_src[fit_idx]]
    if not sup.any():
        sup[rng.integers(len(fit_idx))] = True
    return fit_idx[~sup], fit_idx[sup]


def validation_split(dst: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Validation mask over record edges [E]: about `fraction` of them, none if too few remain.

    `VAL_COLD_SHARE` of the validation records are every record of whole datasets (so early
    stopping also sees cold datasets), the rest single records drawn at random.
    """
    num_edges = len(dst)
    num_val = int(round(fraction * num_edges))
    is_val = np.zeros(num_edges, dtype=bool)
    if num_val == 0 or num_edges - num_val < 2:
        return is_val
    if target := int(round(VAL_COLD_SHARE * num_val)):
        for d in rng.permutation(np.unique(dst)):
            if is_val.sum() >= target:
                break
            is_val[dst == d] = True
    rest = np.flatnonzero(~is_val)
    missing = max(num_val - int(is_val.sum()), 0)
    is_val[rng.permutation(rest)[:missing]] = True
    if (~is_val).sum() < 2:  # whole datasets overshot: keep at least two records to fit
        is_val[np.flatnonzero(is_val)[:2]] = False
    return is_val


def member_seed(seed: int, k: int) -> int:
    """Seed of ensemble member k (member 0 of seed s differs from member 1 of seed s − 1)."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


@contextmanager
def torch_context(num_threads: int | None) -> Iterator[None]:
    """Deterministic CPU algorithms, the given thread count and a private global RNG state."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(num_threads or 1)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)
