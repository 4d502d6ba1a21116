"""`import tpred` makes `import torchvision` work beside the pinned CPU torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_torchvision_imports_after_tpred_in_a_fresh_process():
    pytest.importorskip("torch")
    if subprocess.run([sys.executable, "-c", "import importlib.util, sys; "
                       "sys.exit(importlib.util.find_spec('torchvision') is None)"]).returncode:
        pytest.skip("torchvision is not installed (tpred[extract])")
    code = ("import tpred, torchvision\n"
            "m = torchvision.models.get_model('resnet18', weights=None)\n"
            "print(sum(p.numel() for p in m.parameters()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "11689512"  # resnet18's parameter count


def test_hook_steps_aside_once_torchvision_is_imported():
    code = ("import sys, tpred\n"
            "from tpred._torchvision import _TorchvisionHook\n"
            "before = sum(isinstance(f, _TorchvisionHook) for f in sys.meta_path)\n"
            "try:\n    import torchvision  # noqa: F401\nexcept ImportError:\n    pass\n"
            "after = sum(isinstance(f, _TorchvisionHook) for f in sys.meta_path)\n"
            "print(before, after)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0"]
