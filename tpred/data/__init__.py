"""Reading and validating a zoo's tables."""

from tpred.data.ids import check_known_ids
from tpred.data.tables import (
    check_columns,
    load_zoo,
    read_datasets,
    read_models,
    read_records,
    read_scores,
)
from tpred.data.zoo import Zoo

__all__ = ["Zoo", "check_columns", "check_known_ids", "load_zoo", "read_datasets", "read_models",
           "read_records", "read_scores"]
