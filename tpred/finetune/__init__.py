"""Ground-truth accuracies (records) of models on datasets, by two protocols.

* `linear-probe`: a logistic-regression head on the frozen features `tpred.extract` wrote
  (`linear_probe(train_x, train_y, test_x, test_y)`, `probe_directory(features_dir, out_csv)`).
* `finetune`: the whole network and a new linear head trained for a fixed budget with AdamW,
  seeded (`finetune_model(model, source, FinetuneSettings(...))`, `finetune(models, sources,
  out_csv)`).

Records carry the protocol in a column and are written resumably (`tpred.finetune.records`).
"""

from __future__ import annotations

from tpred.finetune.full import FinetuneResult, FinetuneSettings, finetune, finetune_model
from tpred.finetune.probe import HEAD_C, linear_probe, probe_directory, probe_file
from tpred.finetune.records import PROTOCOLS, RECORD_COLUMNS, errors_path, read_records_table

__all__ = ["HEAD_C", "PROTOCOLS", "RECORD_COLUMNS", "FinetuneResult", "FinetuneSettings",
           "errors_path", "finetune", "finetune_model", "linear_probe", "probe_directory",
           "probe_file", "read_records_table"]
