"""Fixtures shared across test folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

#: test folders whose networks are tiny: one torch thread there, since on a shared 2-core
#: machine two OpenMP threads spin-wait against each other (measured: 12 ms vs 0.55 ms per
#: forward of the test CNN under load)
ONE_THREAD_FOLDERS = ("extract", "finetune")


@pytest.fixture
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(root).parts if item.path.is_relative_to(root) else ()
        if parts and parts[0] in ONE_THREAD_FOLDERS:
            item.fixturenames.insert(0, "one_torch_thread")


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


# ------------------------------------------------------------ tpred.extract / tpred.finetune
# tiny offline targets and models: digits written as PNG folders and a text CSV
# (`tpred.extract.demo`), a tiny ViT and a tiny BERT saved with `save_pretrained`, TorchScript
# and pickled `torch:` files


class TinyNet(nn.Module):
    """A small CNN with an `fc` head (grayscale input), for `torch:` files."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


@pytest.fixture(scope="session")
def tiny_net() -> type[TinyNet]:
    return TinyNet


@pytest.fixture(scope="session")
def digit_folder(tmp_path_factory) -> Path:
    """digits 0, 1, 2 as 16x16 PNGs: 6 train and 3 test images per class."""
    from tpred.extract.demo import write_digit_folder

    return write_digit_folder(tmp_path_factory.mktemp("data") / "digits3")


@pytest.fixture(scope="session")
def text_csv(tmp_path_factory) -> Path:
    """Three topics, 6 train and 3 test sentences each (`split` column)."""
    from tpred.extract.demo import write_topic_table

    return write_topic_table(tmp_path_factory.mktemp("text") / "topics.csv")


@pytest.fixture(scope="session")
def script_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("torch") / "tinynet.pt"
    torch.jit.save(torch.jit.script(TinyNet().eval()), str(path))
    return path


@pytest.fixture(scope="session")
def pickled_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pickled") / "tinynet-pickled.pt"
    torch.save(TinyNet().eval(), path)
    return path


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory) -> Path:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = tmp_path_factory.mktemp("hf") / "tiny-vit"
    config = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=64, num_labels=5,
                       id2label={i: f"source{i}" for i in range(5)},
                       label2id={f"source{i}": i for i in range(5)})
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 1-layer BERT classifier (3 source labels) with the packaged MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from tpred.text import packaged_model_dir

    folder = tmp_path_factory.mktemp("hf") / "tiny-bert"
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_dir())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, num_labels=3,
                        max_position_embeddings=64)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
