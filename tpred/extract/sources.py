"""Data sources: image folders, Hugging Face `datasets`, text tables — opened the same way.

`open_source(SOURCE)` returns a `DataSource`: `name`, `modality` (`image`/`text`), `classes`
(class names; labels are positions in it), and `train`/`test` `Split`s whose `item(i)` is one raw
item (a PIL image or a string) and `labels` [N] its class index. Nothing is decoded up front:
images are read one at a time when a model asks for them.

SOURCE is one of:

* a folder in `torchvision.datasets.ImageFolder` layout (`<class>/<image>`), or with `train/`
  and `test/` (or `val/`) sub-folders in that layout;
* a folder written by `datasets.Dataset(Dict).save_to_disk` (`load_from_disk`), or `hf:<name>`
  for `datasets.load_dataset(<name>)` (hub or cache);
* a `.csv`/`.tsv`/`.jsonl`/`.json` text table with a text and a label column and optionally a
  split column (`train`/`test`); without one, a stratified split seeded by `seed`;
* `<prefix>:<ref>` for a prefix added with `register_source`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tpred.extract._deps import require

__all__ = ["SOURCES", "DataSource", "SourceOptions", "Split", "open_source", "register_source"]

#: image file extensions of an image folder (torchvision's IMG_EXTENSIONS)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
TEST_SPLITS = ("test", "val", "validation")


@dataclass(frozen=True)
class SourceOptions:
    """How to read a source.

    Args:
        max_per_class: keep at most this many items per class in each split (a seeded,
            stratified subsample; None keeps all).
        seed: seed of the subsample and of a carved train/test split.
        text_column, label_column, split_column: column names of text tables and `datasets`.
        image_column: the image column of a `datasets` dataset (default: its first `Image`
            column).
        test_fraction: share of a text table without a split column held out as test.
        name: the dataset's id in output tables (default: the folder/file name).
    """

    max_per_class: int | None = None
    seed: int = 0
    text_column: str = "text"
    label_column: str = "label"
    split_column: str = "split"
    image_column: str | None = None
    test_fraction: float = 0.2
    name: str | None = None

    def __post_init__(self) -> None:
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ValueError(f"SourceOptions.max_per_class must be >= 1, got "
                             f"{self.max_per_class}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"SourceOptions.test_fraction must be in (0, 1), got "
                             f"{self.test_fraction}")


@dataclass
class Split:
    """One split of a source: items read on demand, and their labels.

    Args:
        name: `train` or `test`.
        labels: class index of every item [N] (int64, positions in `DataSource.classes`).
        items: what `read` needs for each item (a path, a text, a row number) [N].
        read: item -> raw item (PIL image or str); raises ValueError for an unreadable item.
        where: item -> a short description for error rows (a path, `file, line 7`).
    """

    name: str
    labels: np.ndarray
    items: Sequence[Any]
    read: Callable[[Any], Any] = field(repr=False)
    where: Callable[[Any], str] = field(repr=False, default=str)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        assert len(self.labels) == len(self.items), "one label per item"

    def __len__(self) -> int:
        return len(self.labels)

    def item(self, i: int) -> Any:
        """The raw item `i` (PIL image or str). Raises ValueError when it cannot be read."""
        return self.read(self.items[i])

    def describe(self, i: int) -> str:
        """Where item `i` comes from (for error rows)."""
        return self.where(self.items[i])

    def subset(self, index: np.ndarray) -> Split:
        """The items at positions `index` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        return replace(self, labels=self.labels[index], items=[self.items[i] for i in index])

    def counts(self, num_classes: int) -> np.ndarray:
        """Items per class [num_classes]."""
        return np.bincount(self.labels, minlength=num_classes)


@dataclass
class DataSource:
    """A labelled dataset: class names and a train split (and a test split when it has one).

    Attributes:
        name: id in output tables and file names.
        location: the folder, file or hub name it was read from.
        kind: `image-folder`, `datasets`, `text-table` or a registered prefix.
        modality: `image` or `text`.
        classes: class names; labels index into it.
        train: the training split.
        test: the test split, or None.
        notes: what was done on reading (subsampling, a carved split), for the sidecar.
    """

    name: str
    location: str
    kind: str
    modality: str
    classes: tuple[str, ...]
    train: Split
    test: Split | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def splits(self) -> dict[str, Split]:
        """`{"train": ..., "test": ...}` (test only when present)."""
        return {"train": self.train} | ({"test": self.test} if self.test is not None else {})

    def describe(self) -> dict[str, Any]:
        """The measured row of datasets.csv: `num_classes`, `samples_per_class` (the median
        training items per class; the exact number when balanced), `train_size`, `test_size`
        (blank without a test split) and `labels` (class names, comma-separated)."""
        counts = self.train.counts(self.num_classes)
        return {"dataset": self.name, "source": self.location, "kind": self.kind,
                "modality": self.modality, "num_classes": self.num_classes,
                "samples_per_class": int(np.median(counts)), "train_size": len(self.train),
                "test_size": len(self.test) if self.test is not None else "",
                "labels": ", ".join(self.classes)}


# ---------------------------------------------------------------------------------- the registry
Opener = Callable[[str, SourceOptions], DataSource]
#: source prefix -> opener (`hf:` is the hub; paths need no prefix)
SOURCES: dict[str, Opener] = {}


def register_source(prefix: str, opener: Opener, *, replace: bool = False) -> None:
    """Make `open_source(f"{prefix}:<ref>")` call `opener("<ref>", SourceOptions(...))`.

    Raises:
        ValueError: a prefix that is not a lower-case word, or one already taken.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", prefix):
        raise ValueError(f"register_source: prefix must be a lower-case word, got {prefix!r}")
    if prefix in SOURCES and not replace:
        raise ValueError(f"register_source: prefix {prefix!r} is already registered "
                         "(replace=True to override)")
    SOURCES[prefix] = opener


def source_name(source: str) -> str:
    """The default dataset id: the folder or file name (stem), or the hub name (`/` -> `__`)."""
    path = Path(source)
    if path.exists():
        ref = path.resolve().name if path.is_dir() else path.stem
    else:
        ref = str(source).partition(":")[2] or str(source)
    ref = ref.strip("/").replace("/", "__")
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", ref).strip("._") or "dataset"


def open_source(source: str | Path, options: SourceOptions | None = None,
                **kwargs: Any) -> DataSource:
    """Open a data source (see the module docstring for what SOURCE may be).

    Args:
        source: a path or `prefix:ref`.
        options: `SourceOptions`; or give its fields as keyword arguments.

    Returns:
        The `DataSource`, subsampled to `max_per_class` when asked.

    Raises:
        ValueError: a missing path or unknown prefix, an empty class folder, labels that differ
            between splits, a missing column, a bad split value, a class too small to split.
        MissingExtraError: `datasets`/`torchvision`/`pillow` not installed.
    """
    if options is None:
        options = SourceOptions(**kwargs)
    elif kwargs:
        options = replace(options, **kwargs)
    text = str(source)
    path = Path(text)
    prefix, sep, ref = text.partition(":")
    if not path.exists() and sep and prefix in SOURCES:
        data = SOURCES[prefix](ref, options)
    elif path.is_dir():
        data = _open_folder(path, options)
    elif path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        data = _open_table(path, options)
    elif path.is_file():
        raise ValueError(f"{path}: not a data source (a folder, or a text table ending in "
                         f"{', '.join(TABLE_SUFFIXES)})")
    elif sep and re.fullmatch(r"[a-z][a-z0-9_-]*", prefix):
        raise ValueError(f"data source {text!r}: Could not resolve prefix {prefix!r} among "
                         f"choices {{{', '.join(sorted(SOURCES))}}}")
    else:
        raise ValueError(f"data source {text!r}: no such file or folder (a hub dataset is "
                         f"written hf:<name>)")
    if options.name is not None:
        data.name = options.name
    _check_nonempty(data)
    if options.max_per_class is not None:
        _subsample(data, options.max_per_class, options.seed)
    return data


def _check_nonempty(data: DataSource) -> None:
    if len(data.train) == 0:
        raise ValueError(f"{data.location}: the train split holds no item")
    if len(data.classes) < 2:
        raise ValueError(f"{data.location}: needs at least 2 classes, found {list(data.classes)}")


def _split_seed(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def _subsample(data: DataSource, max_per_class: int, seed: int) -> None:
    """At most `max_per_class` items per class in each split: a seeded choice, order kept."""
    for name, split in data.splits.items():
        rng = _split_seed(seed, data.name, name, "max-per-class")
        keep = []
        for c in range(data.num_classes):
            members = np.flatnonzero(split.labels == c)
            if len(members) > max_per_class:
                members = rng.choice(members, size=max_per_class, replace=False)
            keep.append(members)
        index = np.sort(np.concatenate(keep))
        if len(index) < len(split):
            data.notes.append(f"{name}: {len(index)} of {len(split)} items kept "
                              f"(max_per_class={max_per_class}, seed={seed})")
            setattr(data, name, split.subset(index))


def _check_same_classes(train: Sequence[str], test: Sequence[str], where: str) -> None:
    if list(train) != list(test):
        only_train = sorted(set(train) - set(test))
        only_test = sorted(set(test) - set(train))
        raise ValueError(f"{where}: labels do not match between splits (only in train: "
                         f"{only_train or 'none'}; only in test: {only_test or 'none'})")


# ---------------------------------------------------------------------------------- image folders
def _read_image(path: str) -> Any:
    """A decoded PIL image (mode as stored); ValueError naming the file when it is unreadable."""
    image_mod = require("PIL.Image", needed_for="image folders")
    try:
        with image_mod.open(path) as image:
            image.load()
            return image.copy() if image.mode in ("RGB", "L") else image.convert("RGB")
    except (OSError, SyntaxError, ValueError, image_mod.DecompressionBombError) as err:
        raise ValueError(f"{path}: unreadable image ({type(err).__name__}: {err})") from err


def _image_split(folder: Path, name: str) -> tuple[tuple[str, ...], Split]:
    """Class names and a split from a folder of class folders.

    Raises:
        ValueError: no class folder, or a class folder without an image.
    """
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and
                     not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{folder}: no class folder (ImageFolder layout: "
                         f"{folder}/<class>/<image>)")
    items, labels, empty = [], [], []
    for c, cls in enumerate(classes):
        files = sorted(str(p) for p in (folder / cls).rglob("*")
                       if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            empty.append(cls)
        items += files
        labels += [c] * len(files)
    if empty:
        raise ValueError(f"{folder}: class folder(s) {empty} hold no image "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    return tuple(classes), Split(name, np.array(labels), items, _read_image, str)


def _open_folder(path: Path, options: SourceOptions) -> DataSource:
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return _open_datasets_on_disk(path, options)
    name = options.name or source_name(str(path))
    if (path / "train").is_dir():
        classes, train = _image_split(path / "train", "train")
        test = None
        if found := [s for s in TEST_SPLITS if (path / s).is_dir()]:
            test_classes, test = _image_split(path / found[0], "test")
            _check_same_classes(classes, test_classes, str(path))
        return DataSource(name, str(path), "image-folder", "image", classes, train, test)
    classes, train = _image_split(path, "train")
    return DataSource(name, str(path), "image-folder", "image", classes, train)


# ---------------------------------------------------------------------------------- text tables
def _open_table(path: Path, options: SourceOptions) -> DataSource:
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            frame = pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
            frame = frame.astype(str).where(frame.notna(), "")
            first_line = 1
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False,
                                sep="\t" if suffix == ".tsv" else ",")
            first_line = 2
    except (ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: unreadable table ({err})") from err
    for role, col in (("text", options.text_column), ("label", options.label_column)):
        if col not in frame.columns:
            raise ValueError(f"{path}: no {role} column {col!r} (--{role}-column); columns "
                             f"found: {list(frame.columns)}")
    lines = np.arange(len(frame)) + first_line
    labels_text = frame[options.label_column].str.strip()
    if (bad := labels_text == "").any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}, line {lines[i]}, column {options.label_column!r}: empty "
                         f"label ({int(bad.sum())} such row(s))")
    texts = frame[options.text_column].tolist()
    name = options.name or source_name(str(path))
    notes = []
    if options.split_column in frame.columns:
        split = frame[options.split_column].str.strip()
        if (bad := ~split.isin(["train", "test"])).any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}, line {lines[i]}, column {options.split_column!r}: must "
                             f"be 'train' or 'test', got {frame[options.split_column].iloc[i]!r}")
        is_train = (split == "train").to_numpy()
    else:
        is_train = _carve(labels_text.to_numpy(), options, path)
        notes.append(f"no {options.split_column!r} column: stratified split, "
                     f"{options.test_fraction:.0%} test, seed {options.seed}")
    classes = tuple(sorted(set(labels_text[is_train])))
    test_classes = tuple(sorted(set(labels_text[~is_train])))
    if (~is_train).any():
        _check_same_classes(classes, test_classes, str(path))
    codes = pd.Index(classes).get_indexer(labels_text)

    def make(name_: str, mask: np.ndarray) -> Split:
        rows = np.flatnonzero(mask)
        return Split(name_, codes[rows], rows.tolist(), texts.__getitem__,
                     partial(_table_line, str(path), lines))

    test = make("test", ~is_train) if (~is_train).any() else None
    return DataSource(name, str(path), "text-table", "text", classes, make("train", is_train),
                      test, notes)


def _table_line(path: str, lines: np.ndarray, row: int) -> str:
    return f"{path}, line {lines[row]}"


def _carve(labels: np.ndarray, options: SourceOptions, path: Path) -> np.ndarray:
    """A seeded stratified train mask [N].

    Raises:
        ValueError: a class with a single row (it cannot be in both parts).
    """
    from sklearn.model_selection import train_test_split

    values, counts = np.unique(labels, return_counts=True)
    if (counts < 2).any():
        raise ValueError(f"{path}: class {values[counts < 2][0]!r} has a single row; a "
                         f"stratified train/test split needs 2 (add a {options.split_column!r} "
                         "column)")
    index = np.arange(len(labels))
    train, _ = train_test_split(index, test_size=options.test_fraction, stratify=labels,
                                random_state=options.seed)
    mask = np.zeros(len(labels), dtype=bool)
    mask[train] = True
    return mask


# ---------------------------------------------------------------------------------- datasets
def _open_datasets_on_disk(path: Path, options: SourceOptions) -> DataSource:
    datasets = require("datasets", needed_for=f"data source {path}")
    return _from_datasets(datasets.load_from_disk(str(path)), str(path),
                          options.name or source_name(str(path)), options)


def _open_hub(ref: str, options: SourceOptions) -> DataSource:
    datasets = require("datasets", needed_for=f"data source hf:{ref}")
    try:
        loaded = datasets.load_dataset(ref)
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise ValueError(f"hf:{ref}: cannot load the dataset ({type(err).__name__}: "
                         f"{err})") from err
    return _from_datasets(loaded, f"hf:{ref}", options.name or source_name(f"hf:{ref}"), options)


def _from_datasets(loaded: Any, where: str, name: str, options: SourceOptions) -> DataSource:
    datasets = require("datasets", needed_for=f"data source {where}")
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise ValueError(f"{where}: no 'train' split; splits found: {list(loaded)}")
        test_name = next((s for s in TEST_SPLITS if s in loaded), None)
        parts = {"train": loaded["train"]} | ({"test": loaded[test_name]} if test_name else {})
    else:
        parts = {"train": loaded}
    features = parts["train"].features
    label_col = options.label_column
    if label_col not in features:
        raise ValueError(f"{where}: no label column {label_col!r} (--label-column); columns "
                         f"found: {list(features)}")
    image_cols = [c for c, f in features.items() if isinstance(f, datasets.Image)]
    if options.image_column is not None:
        if options.image_column not in features:
            raise ValueError(f"{where}: no image column {options.image_column!r} "
                             f"(--image-column); columns found: {list(features)}")
        column, modality = options.image_column, "image"
    elif image_cols:
        column, modality = image_cols[0], "image"
    elif options.text_column in features:
        column, modality = options.text_column, "text"
    else:
        raise ValueError(f"{where}: no image column and no text column "
                         f"{options.text_column!r} (--text-column); columns found: "
                         f"{list(features)}")
    label_feature = features[label_col]
    if isinstance(label_feature, datasets.ClassLabel):
        classes = tuple(label_feature.names)
        codes = {s: np.asarray(part[label_col], dtype=np.int64) for s, part in parts.items()}
    else:
        values = {s: np.asarray([str(v) for v in part[label_col]]) for s, part in parts.items()}
        classes = tuple(sorted(set(values["train"])))
        if "test" in values:
            _check_same_classes(classes, tuple(sorted(set(values["test"]))), where)
        codes = {s: pd.Index(classes).get_indexer(v) for s, v in values.items()}

    def make(split: str) -> Split:
        part = parts[split]
        return Split(split, codes[split], list(range(len(part))),
                     partial(_datasets_item, part, column, modality),
                     partial(_datasets_where, where, split))

    return DataSource(name, where, "datasets", modality, classes, make("train"),
                      make("test") if "test" in parts else None)


def _datasets_item(part: Any, column: str, modality: str, row: int) -> Any:
    value = part[int(row)][column]
    if modality == "image" and value.mode not in ("RGB", "L"):
        value = value.convert("RGB")
    return value


def _datasets_where(where: str, split: str, row: int) -> str:
    return f"{where} [{split}] row {row}"


register_source("hf", _open_hub)
