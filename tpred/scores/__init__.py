"""Transferability metrics as plain functions of arrays, a registry by name, and scores tables.

    from tpred.scores import logme, METRICS, get_metric
    logme(features, labels)                    # features [N, D], labels [N] -> float
    get_metric("ped+logme").fn(features, labels)

The metric functions are imported on first access (PEP 562 `__getattr__`), so importing this
package loads neither scikit-learn nor SciPy.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from tpred.scores.registry import METRICS, get_metric

if TYPE_CHECKING:  # for type checkers and IDEs; at run time `__getattr__` imports on demand
    from tpred.scores.enhance import ped, spread_attract
    from tpred.scores.gbc import gbc
    from tpred.scores.hscore import hscore, hscore_shrinkage
    from tpred.scores.leep import leep
    from tpred.scores.logme import LogME, logme
    from tpred.scores.nce import nce
    from tpred.scores.ncti import ncti_combine, ncti_components
    from tpred.scores.nleep import nleep
    from tpred.scores.parc import parc
    from tpred.scores.sfda import sfda
    from tpred.scores.transrate import transrate

_LAZY = {
    "logme": "logme", "LogME": "logme", "leep": "leep", "nce": "nce", "hscore": "hscore",
    "hscore_shrinkage": "hscore", "nleep": "nleep", "sfda": "sfda", "gbc": "gbc",
    "parc": "parc", "transrate": "transrate", "ncti_components": "ncti",
    "ncti_combine": "ncti", "ped": "enhance", "spread_attract": "enhance",
}

__all__ = [
    "logme", "LogME", "leep", "nce", "hscore", "hscore_shrinkage", "nleep", "sfda", "gbc", "parc",
    "transrate", "ncti_components", "ncti_combine", "ped", "spread_attract", "METRICS",
    "get_metric",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"tpred.scores.{_LAZY[name]}"), name)
        globals()[name] = value  # later accesses skip this hook
        return value
    raise AttributeError(f"module 'tpred.scores' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _ScoresPackage(types.ModuleType):
    """This package, keeping `tpred.scores.logme` the function whichever import runs first.

    After loading a submodule the import system binds it on its package (`setattr(tpred.scores,
    "logme", <module>)`); here most functions share their module's name, so that binding is
    skipped and `__getattr__` returns the function, exactly as eager `from .logme import logme`
    lines at the end of this file would leave it.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _ScoresPackage
