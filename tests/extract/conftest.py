"""One torch thread for these tests: their networks are tiny, and on a shared 2-core machine
two OpenMP threads spin-wait against each other (measured: 12 ms vs 0.55 ms per forward of the
test CNN under load)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
