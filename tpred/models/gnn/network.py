"""`GNNNet`: per-type input projection, heterogeneous message passing, skip-combination, decoder.

Encoder: each node type's features are projected to `hidden_channels` (a type without features
gets a learned constant), then `num_layers` `HeteroConv` layers of `EdgeConv` run over every edge
type of the message graph (records and scores, both directions); the projection and every
layer's output are concatenated (SCG4Trf's skip-combination). Decoder: an MLP on [z_model ‖
z_dataset ‖ pair inputs]. In residual mode the output is base + gated · gate + MLP, with the
MLP's last layer starting at zero, so an untrained network is the additive baseline plus a
linear blend of the simple methods' corrections (neighbour residuals, zmean) and of the attention
neighbour terms (`NeighbourAttention`, with `GNNConfig.attention`); otherwise it is a sigmoid of
the MLP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv

from tpred.config import GNNConfig
from tpred.graph import DATASET, MODEL
from tpred.models.gnn.batch import GNNBatch
from tpred.models.gnn.conv import EdgeConv


class GNNNet(nn.Module):
    """Encoder (projection, message passing, skip-concatenation) and MLP decoder.

    Args:
        num_features: input features per node type (0 allowed).
        edge_dims: edge feature width per edge type used for message passing.
        num_pair_features: decoder inputs per pair besides the two embeddings (the last
            `num_gated` of them are the terms the gate weighs).
        num_gated: terms blended linearly into the output (`GNNBatch.gated`).
        config: hidden size, layers, heads, conv, dropout, residual.
    """

    def __init__(self, num_features: dict[str, int], edge_dims: dict[tuple[str, str, str], int],
                 num_pair_features: int, config: GNNConfig, num_gated: int = 2) -> None:
        super().__init__()
        hidden, self.dropout, self.residual = (config.hidden_channels, config.dropout,
                                               config.residual)
        self.logit_output = bool(config.logit_squeeze)
        self.proj = nn.ModuleDict({t: nn.Linear(f, hidden) for t, f in num_features.items()
                                   if f > 0})
        self.const = nn.ParameterDict({t: nn.Parameter(torch.zeros(1, hidden))
                                       for t, f in num_features.items() if f == 0})
        self.convs = nn.ModuleList(
            HeteroConv({et: EdgeConv(hidden, hidden, edge_dim=d, heads=config.heads,
                                     kind=config.conv, dropout=config.dropout)
                        for et, d in edge_dims.items()}, aggr="sum")
            for _ in range(config.num_layers))
        width = hidden * (config.num_layers + 1)
        self.decoder = nn.Sequential(nn.Linear(2 * width + num_pair_features, hidden), nn.ReLU(),
                                     nn.Dropout(config.dropout), nn.Linear(hidden, 1))
        #: weights of the gated terms in the output (residual mode)
        self.neighbour_gate = nn.Parameter(torch.zeros(num_gated))
        if config.residual:  # start exactly at the additive baseline
            nn.init.zeros_(self.decoder[-1].weight)
            nn.init.zeros_(self.decoder[-1].bias)
        #: the attention neighbour terms (`GNNConfig.attention`), one per node type
        self.attention = (nn.ModuleDict({t: NeighbourAttention(width, config.hidden_channels,
                                                               tuple(config.attention_betas))
                                         for t in (DATASET, MODEL)})
                          if config.attention else None)

    def encode(self, graph: HeteroData) -> dict[str, Tensor]:
        """Node embeddings [N_t, hidden * (num_layers + 1)] per type of the message graph."""
        h = {}
        for t, x in graph.x_dict.items():
            if t in self.proj:
                h[t] = self.proj[t](F.dropout(x, self.dropout, self.training))
            else:
                h[t] = self.const[t].expand(len(x), -1)
        layers = [h]
        edge_index, edge_attr = graph.edge_index_dict, graph.edge_attr_dict
        for conv in self.convs:
            out = conv(h, edge_index, edge_attr_dict=edge_attr)
            h = {t: F.dropout(F.elu(out[t]), self.dropout, self.training) for t in h}
            layers.append(h)
        return {t: torch.cat([layer[t] for layer in layers], dim=-1) for t in h}

    def decode(self, z: dict[str, Tensor], src: Tensor, dst: Tensor, pair_x: Tensor) -> Tensor:
        """Raw decoder output [P] for pairs (src model, dst dataset)."""
        inp = torch.cat([z[MODEL][src], z[DATASET][dst], pair_x], dim=-1)      # [P, 2Z + K]
        return self.decoder(inp).squeeze(-1)

    def forward(self, batch: GNNBatch) -> Tensor:
        """Predicted accuracies of the batch's pairs [P] (unclipped in residual mode)."""
        z = self.encode(batch.graph)
        out = self.decode(z, batch.src, batch.dst, batch.pair_x)              # [P]
        if not self.residual:
            # on the logit scale the output is the logit itself (`gnn/target.py` inverts it)
            return out if self.logit_output else torch.sigmoid(out)
        out = batch.base + batch.gated @ self.neighbour_gate + out
        if self.attention is not None:
            out = out + self.attention_terms(z, batch) @ self.attention_gate()
        return out

    def attention_terms(self, z: dict[str, Tensor], batch: GNNBatch) -> Tensor:
        """The attention neighbour terms before their gates [P, 2H] (dataset side's H heads,
        then the model side's; 0 where the batch has no candidates)."""
        if self.attention is None:
            return torch.zeros(len(batch.src), 0)
        heads = len(self.attention[DATASET].gate)
        cols = []
        for i, (t, query) in enumerate(((DATASET, batch.dst), (MODEL, batch.src))):
            cand = batch.candidates[i] if batch.candidates is not None else None
            cols.append(self.attention[t](z[t], query, cand) if cand is not None
                        else torch.zeros(len(batch.src), heads))
        return torch.cat(cols, dim=1)

    def attention_gate(self) -> Tensor:
        """The attention terms' weights [2H] (dataset side, model side)."""
        return torch.cat([self.attention[DATASET].gate, self.attention[MODEL].gate])


class NeighbourAttention(nn.Module):
    """A neighbour residual with learned weights: attention of a queried node over its
    candidate neighbours (`batch.Candidates`), the values being the residuals of the pair's
    other node with them.

    logit_j = β · sim_j + ⟨q(z_node), k(z_j)⟩ / √h over the known candidates, plus a null
    candidate of value 0 and logit b (the learned counterpart of the fixed terms' shrinkage:
    a node with no confident neighbour gets a damped term); the output is Σ_j α_j v_j, and
    `gate` its weight in the network's output (`GNNNet.attention_gate`; it starts at its
    non-negative least-squares value, `trainer.fit_gate`). The similarity is thus learned from the
    encoder's embeddings (node features and, through message passing, records) on top of the
    fixed cosine. Written by hand: PyG's attention layers pass messages over graph edges, while
    these candidates and their masked values change with every batch's message edges.

    With several β (`GNNConfig.attention_betas`, their starting values) the module has H
    heads: one softmax, null logit and gate per β, the ⟨q, k⟩ term shared, so the least-squares
    start can mix sharper and broader neighbourhoods.

    Shapes: z [N, Z]; query [P]; candidates [P, C] -> [P, H].
    """

    def __init__(self, width: int, hidden: int, betas: tuple[float, ...] = (5.0,)) -> None:
        super().__init__()
        self.q, self.k = nn.Linear(width, hidden), nn.Linear(width, hidden)
        self.beta = nn.Parameter(torch.tensor(betas, dtype=torch.float32))        # [H]
        self.null = nn.Parameter(torch.zeros(len(betas)))                          # [H]
        self.gate = nn.Parameter(torch.zeros(len(betas)))                          # [H]
        self.scale = hidden ** -0.5

    def forward(self, z: Tensor, query: Tensor, cand) -> Tensor:
        # every query against every node, then the candidates' columns: one small matmul
        # instead of gathering a [P, C, h] tensor (whose backward is a slow scatter)
        dot = self.q(z)[query] @ self.k(z).T                                   # [P, N]
        # heads before candidates, so that the softmax reduces over contiguous memory; unknown
        # candidates get -inf by adding the batch's mask (cheaper backward than masked_fill)
        logit = (self.beta[:, None] * cand.sim[:, None, :]
                 + (dot.gather(1, cand.node) * self.scale + cand.mask)[:, None, :])  # [P, H, C]
        null = self.null[:, None].expand(len(logit), -1, 1)                    # [P, H, 1]
        alpha = torch.softmax(torch.cat([logit, null], dim=2), dim=2)[..., :-1]
        return (alpha * cand.value[:, None, :]).sum(2)                         # [P, H]
