"""The embedded default zoo: `python -m tpred.zoo build` trains small networks on scikit-learn's
digits and writes a real model zoo (models, datasets, records, scores) on the CPU."""

from tpred.zoo.build import SourceSpec, ZooPlan, ZooTables, build_zoo, default_plan

__all__ = ["SourceSpec", "ZooPlan", "ZooTables", "build_zoo", "default_plan"]
