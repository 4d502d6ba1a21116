"""tpred: predict transfer accuracy of pre-trained models without fine-tuning.

`tpred.load(run_dir) -> tpred.Run` loads a trained run (imported lazily, so `import tpred`
stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tpred._torchvision import install_hook

__version__ = "0.1.0"
__all__ = ["Run", "load"]

install_hook()  # `import torchvision` works beside the pinned CPU torch (tpred/_torchvision.py)

if TYPE_CHECKING:
    from tpred.api import Run, load


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tpred import api

        return getattr(api, name)
    raise AttributeError(f"module 'tpred' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
