"""Reading and validating a zoo's tables."""

from tpred.data.zoo import Zoo

__all__ = ["Zoo"]
