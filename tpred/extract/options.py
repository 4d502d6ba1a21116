"""Command-line options shared by `python -m tpred.extract` and `python -m tpred.finetune`:
which models and data, how models are loaded and run, how sources are read."""

from __future__ import annotations

import argparse
from pathlib import Path

from tpred.extract.run import ExtractSettings
from tpred.extract.sources import SourceOptions


def add_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """`--models/--models-file --names --data --data-names`, model loading, running and source
    options (see `settings(args)`)."""
    which = parser.add_argument_group("models and data")
    models = which.add_mutually_exclusive_group(required=required)
    models.add_argument("--models", help="comma-separated model specs (hf:, timm:, "
                        "torchvision:, torch:)")
    models.add_argument("--models-file", type=Path,
                        help="text file, one 'SPEC [NAME]' per line (# starts a comment)")
    which.add_argument("--names", help="comma-separated model ids, one per spec (default: the "
                       "hub id or file/folder name)")
    which.add_argument("--data", action="append", required=required, metavar="SOURCE",
                       help="data source (repeatable)")
    which.add_argument("--data-names", help="comma-separated dataset ids, one per --data")

    load = parser.add_argument_group("loading and running models")
    load.add_argument("--no-pretrained", action="store_true",
                      help="random weights (the architecture only; for tests and dry runs)")
    load.add_argument("--layer", help="module whose output gives the features (default: the "
                      "input of the classifier head)")
    load.add_argument("--trust", action="store_true",
                      help="let model files run code: pickled nn.Module files, torch.export "
                      "archives, Hugging Face trust_remote_code (only for files you trust)")
    load.add_argument("--image-size", type=int, help="resize/crop images to this size instead "
                      "of the model's own (timm, torchvision, torch:)")
    load.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    load.add_argument("--batch-size", type=int, default=64, help="items per forward pass")
    load.add_argument("--no-amp", action="store_true", help="no float16 autocast on CUDA")
    load.add_argument("--workers", type=int, default=0,
                      help="DataLoader processes reading items (default 0: in process)")
    load.add_argument("--seed", type=int, default=0,
                      help="seed of subsamples, carved splits, random weights and training")

    data = parser.add_argument_group("reading data")
    data.add_argument("--max-per-class", type=int,
                      help="at most N items per class and split (seeded, stratified)")
    data.add_argument("--text-column", default="text")
    data.add_argument("--label-column", default="label")
    data.add_argument("--split-column", default="split")
    data.add_argument("--image-column", help="image column of a datasets dataset")
    data.add_argument("--test-fraction", type=float, default=0.2,
                      help="test share of a text table without a split column")


def read_models_file(path: Path) -> tuple[list[str], list[str] | None]:
    """Specs and names of a models file (`SPEC [NAME]` per line).

    Raises:
        ValueError: a missing file, a line with more than two fields, no spec at all, or names
            given on some lines only.
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such models file")
    specs, names = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 2:
            raise ValueError(f"{path}, line {number}: expected 'SPEC [NAME]', got {line!r}")
        specs.append(fields[0])
        names.append(fields[1] if len(fields) == 2 else None)
    if not specs:
        raise ValueError(f"{path}: no model spec")
    if all(n is None for n in names):
        return specs, None
    if any(n is None for n in names):
        raise ValueError(f"{path}: give a NAME on every line or on none")
    return specs, names


def split_list(text: str | None) -> list[str] | None:
    """`"a, b,c"` -> `["a", "b", "c"]`; None stays None."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def models(args: argparse.Namespace) -> tuple[list[str], list[str] | None]:
    """(specs, names or None) from `--models`/`--models-file` and `--names`."""
    if args.models_file is not None:
        specs, names = read_models_file(args.models_file)
    else:
        specs, names = split_list(args.models) or [], None
    if args.names is not None:
        names = split_list(args.names)
    return specs, names


def settings(args: argparse.Namespace) -> ExtractSettings:
    """`ExtractSettings` from the options of `add_arguments`.

    Raises:
        ValueError: a bad batch size, worker count, device or source option.
    """
    from tpred.extract.models import resolve_device

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {args.workers}")
    resolve_device(args.device)
    return ExtractSettings(
        pretrained=not args.no_pretrained, layer=args.layer, trust=args.trust,
        image_size=args.image_size, seed=args.seed, device=args.device,
        batch_size=args.batch_size, amp=not args.no_amp, workers=args.workers,
        source=SourceOptions(max_per_class=args.max_per_class, seed=args.seed,
                             text_column=args.text_column, label_column=args.label_column,
                             split_column=args.split_column, image_column=args.image_column,
                             test_fraction=args.test_fraction))
