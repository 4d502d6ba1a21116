"""Optional dependencies of `tpred.extract`: one clear error naming the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

#: import name -> pip name, for the packages of the optional extra `tpred[extract]`
EXTRA_PACKAGES = {"timm": "timm", "torchvision": "torchvision", "datasets": "datasets",
                  "PIL": "pillow"}


class MissingExtraError(ImportError):
    """A package of an optional extra is not installed (the message says what to install)."""


def require(module: str, *, needed_for: str) -> ModuleType:
    """Import `module` or raise `MissingExtraError` naming the extra `tpred[extract]`.

    Args:
        module: import name, e.g. `timm`.
        needed_for: what needs it, for the message (e.g. "model spec 'timm:resnet18'").

    Raises:
        MissingExtraError: the package is not installed.
    """
    import tpred  # noqa: F401  (installs the torchvision import hook before timm/torchvision)

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split(".")[0] != module.split(".")[0]:
            raise  # a dependency of the package is missing: its own message is clearer
        pip_name = EXTRA_PACKAGES.get(module.split(".")[0], module)
        raise MissingExtraError(
            f"{needed_for} needs the package {pip_name!r}, which is not installed; it is part "
            f"of the optional extra tpred[extract]: pip install 'tpred[extract]'") from err
