"""notebooks/embeddings.ipynb executes top to bottom on the embedded default zoo (≈ 1–2 min)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "embeddings.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "data" / "digits-zoo" / "records.csv").is_file(),
                    reason="the embedded default zoo data/digits-zoo is absent")
def test_embeddings_notebook_executes_top_to_bottom(monkeypatch):
    monkeypatch.delenv("TPRED_RUN", raising=False)  # train its own small run on digits-zoo
    monkeypatch.delenv("TPRED_DATASET", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # t-SNE maps, predicted vs true, per-domain bars
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "nearest neighbours" in text and "random pairs of datasets" in text
