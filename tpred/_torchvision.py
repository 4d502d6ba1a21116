"""Make `import torchvision` work beside the CPU build of torch that tpred pins.

PyPI's torchvision wheels for x86-64 Linux are built against the CUDA build of torch. Beside
`torch==2.13.0+cpu` their C++ extension (`torchvision/_C.so`, which links `libtorch_cuda.so`)
cannot load, and torchvision's `_meta_registrations` then registers fake kernels for
`torchvision::nms` and `torchvision::qnms`, operators that were never defined: `import
torchvision` fails with "operator torchvision::nms does not exist" — also inside transformers,
which imports torchvision when it is installed. Everything tpred uses from torchvision (model
builders, weight transforms, `ImageFolder`) is pure Python, so declaring the two operator
schemas (without a kernel: calling `nms` still raises) makes it importable.

`install_hook()` (called by `import tpred`) adds a finder that acts once, at the first `import
torchvision`, before torchvision's own code runs; it imports torch only then, and does nothing
when the extension loads (a matching build) or torchvision is absent. No library does this:
torchvision has no switch to skip its meta registrations.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

#: operators that torchvision's meta registrations need to exist (torchvision 0.28/0.29)
_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_library = None  # the torch.library.Library holding the schemas; must outlive this call


class _TorchvisionHook(importlib.abc.MetaPathFinder):
    """Runs `declare_missing_ops` at the first `import torchvision`, then steps aside."""

    def find_spec(self, fullname, path, target=None):  # noqa: D102 (MetaPathFinder API)
        if fullname == "torchvision":
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            declare_missing_ops()
        return None  # the normal finders import torchvision itself


def install_hook() -> None:
    """Add the hook unless torchvision is already imported or the hook is in place."""
    if "torchvision" in sys.modules or any(isinstance(f, _TorchvisionHook)
                                           for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TorchvisionHook())


def declare_missing_ops() -> bool:
    """Declare `torchvision::nms`/`qnms` when torchvision's extension cannot load.

    Returns:
        True when the schemas were declared here, False when nothing was needed (torchvision
        absent, its extension loads, or the operators exist already).
    """
    global _library
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None or _library is not None:
        return False
    import torch

    folder = Path(spec.origin).parent
    for lib in sorted(folder.glob("_C*.so")) + sorted(folder.glob("_C*.pyd")):
        try:
            torch.ops.load_library(str(lib))
            return False  # a matching build: torchvision's own operators are there
        except (OSError, RuntimeError):
            break
    try:
        torch.ops.torchvision.nms  # noqa: B018 (defined by someone else already)
        return False
    except (AttributeError, RuntimeError):
        pass
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _library.define(schema)
    return True
