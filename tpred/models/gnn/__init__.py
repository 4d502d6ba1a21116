"""`gnn`: a heterogeneous graph network over the model–dataset graph (SCG4Trf, improved).

The parts, one file each:

- `conv.py`: `EdgeConv`, GAT / GATv2 / GraphSAGE message passing whose messages carry edge
  features (PyG's attention layers use them in the logits only);
- `network.py`: `GNNNet`, per-type input projection, `HeteroConv` layers of `EdgeConv` over the
  records (and score edges with `GNNConfig.score_edges`; by default the scores enter the decoder
  per pair only), both directions, the skip-combination of every layer's output, an MLP
  decoder on [z_model ‖ z_dataset ‖ pair inputs], and `NeighbourAttention`: neighbour residuals
  whose weights are learned from the node embeddings on top of the fixed cosine
  (`GNNConfig.attention` candidates per pair);
- `baseline.py`: the additive baseline the decoder predicts a residual over (mu + model effect +
  dataset effect on the message edges, each effect shrunk toward a prior regressed on node
  features, so a cold node gets a level from its metadata), and the level a dataset without
  records is moved to after the network (`move_dataset_level`, `GNNConfig.level_after`);
- `batch.py`: `RecordGraph` (the `HeteroData` of `tpred.graph.build_graph` and what batches
  reuse) and `GNNBatch`, one forward pass's input: the message graph and, per queried pair,
  [scores ‖ baseline terms ‖ neighbour residuals] (`tpred.models.neighbours`, shared with
  `knn`), the baseline prediction and the target;
- `trainer.py`: `train_network` (Adam on MSE, optionally with a ranking loss, output gates
  started at their non-negative least-squares fit, moving-average weights, early stopping on a
  validation split of the training records) and the per-epoch split of the other records into
  message and supervised edges that mimics every protocol;
- `predictor.py`: `GNNPredictor` (fit, predict, embed), registered as `gnn`.

The output is base + near · gate + attention · gate' + decoder (residual mode, the default): an
untrained network is the additive baseline plus a non-negative least-squares blend of the
neighbour residuals (fixed and attention), and training learns the rest. How each design was
chosen (inner validation on training pairs only) is recorded in `bench/README.md`.
"""

from tpred.models.gnn.batch import GNNBatch, RecordGraph, make_batch
from tpred.models.gnn.conv import EdgeConv
from tpred.models.gnn.network import GNNNet
from tpred.models.gnn.predictor import GNNPredictor

__all__ = ["EdgeConv", "GNNBatch", "GNNNet", "GNNPredictor", "RecordGraph", "make_batch"]
