"""The finetune protocol: a seeded fixed budget that learns, records per pair, resume, errors."""

from __future__ import annotations

import pandas as pd
import pytest

from tpred.extract import ExtractSettings, load_model, open_source
from tpred.finetune import FinetuneSettings, finetune, finetune_model
from tpred.finetune.__main__ import main

SMALL = ExtractSettings(image_size=8)


def test_training_is_seeded_and_lowers_the_loss(pickled_file, digit_folder):
    settings = FinetuneSettings(epochs=12, lr=0.02, batch_size=6, seed=3, extract=SMALL)
    source = open_source(digit_folder)

    def model():  # a plain nn.Module: TorchScript's executor re-optimises its first calls
        return load_model(f"torch:{pickled_file}", trust=True, image_size=8)

    runs = [finetune_model(model(), source, settings) for _ in range(2)]
    assert runs[0].losses == runs[1].losses and runs[0].accuracy == runs[1].accuracy
    assert runs[0].losses[-1] < 0.8 * runs[0].losses[0]
    assert (runs[0].train_size, runs[0].test_size) == (18, 9)
    other = finetune_model(model(), source, FinetuneSettings(epochs=12, lr=0.02, batch_size=6,
                                                             seed=4, extract=SMALL))
    assert other.losses != runs[0].losses


def test_the_network_itself_is_trained(script_file, digit_folder):
    model = load_model(f"torch:{script_file}", image_size=8)
    before = model.module.state_dict()["conv.weight"].clone()
    finetune_model(model, open_source(digit_folder),
                   FinetuneSettings(epochs=1, lr=0.01, batch_size=9, extract=SMALL))
    assert not model.module.state_dict()["conv.weight"].equal(before)


def test_text_models_fine_tune(tiny_bert, text_csv):
    model = load_model(f"hf:{tiny_bert}")
    result = finetune_model(model, open_source(text_csv), FinetuneSettings(epochs=1))
    assert 0 <= result.accuracy <= 1 and result.test_size == 9


def test_settings_and_sources_are_checked(script_file, digit_folder, tmp_path):
    with pytest.raises(ValueError, match="epochs and batch_size must be >= 1"):
        FinetuneSettings(epochs=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        FinetuneSettings(lr=0)
    import shutil

    flat = shutil.copytree(digit_folder / "train", tmp_path / "flat")
    with pytest.raises(ValueError, match="no test split"):
        finetune_model(load_model(f"torch:{script_file}", image_size=8), open_source(flat))


def test_finetune_records_pairs_resumes_and_reports(script_file, digit_folder, text_csv,
                                                    tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"garbage")
    out = tmp_path / "records.csv"
    settings = FinetuneSettings(epochs=1, batch_size=9, extract=SMALL)
    counts = finetune([f"torch:{script_file}", f"torch:{broken}"], [digit_folder, text_csv],
                      out, settings=settings, progress=False)
    assert counts == {"pairs": 4, "skipped": 0, "done": 1, "other_modality": 1, "failed": 2}
    records = pd.read_csv(out)
    assert records[["model", "dataset", "protocol", "train_size", "test_size"]
                   ].values.tolist() == [["tinynet", "digits3", "finetune", 18, 9]]
    assert records["settings"][0] == "epochs=1 lr=0.0001 batch_size=9 weight_decay=0.01 seed=0"
    errors = pd.read_csv(tmp_path / "records.errors.csv", keep_default_na=False)
    assert sorted(errors["dataset"]) == ["digits3", "topics"]
    assert (errors["model"] == "broken").all()
    again = finetune([f"torch:{script_file}"], [digit_folder], out, settings=settings,
                     progress=False)
    assert again["skipped"] == 1 and again["done"] == 0


def test_cli_finetune(script_file, digit_folder, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["--protocol", "finetune", "--models", f"torch:{script_file}", "--data",
                 str(digit_folder), "--out", str(out), "--epochs", "1", "--image-size", "8",
                 "--device", "cpu", "--no-progress"]) == 0
    assert "1 done" in capsys.readouterr().err
    assert pd.read_csv(out)["protocol"].tolist() == ["finetune"]
    with pytest.raises(SystemExit):
        main(["--protocol", "finetune", "--out", str(out)])
    assert "needs --models" in capsys.readouterr().err
