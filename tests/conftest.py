"""Fixtures shared across test folders."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def small_digits_zoo(tmp_path_factory):
    """A `--small` digits zoo (seed 0; LogME and LEEP scores only, to keep it to seconds), with
    its weights/ and zoo.json. Tests that modify files work on `copy_zoo(...)`."""
    from tpred.zoo.build import build_zoo

    out = tmp_path_factory.mktemp("digits-small")
    build_zoo(out, small=True, seed=0, metrics=["logme", "leep"], progress=False,
              write_readme=False)
    return out


@pytest.fixture
def copy_zoo(tmp_path):
    """copy_zoo(folder) -> a copy of a zoo folder in this test's tmp_path."""

    def copy(folder):
        return shutil.copytree(folder, tmp_path / "zoo")

    return copy
