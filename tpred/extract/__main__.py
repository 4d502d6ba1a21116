"""Run pre-trained models over datasets: features, source-head probabilities, measured metadata.

    python -m tpred.extract --models timm:resnet18,torchvision:vit_b_16,hf:facebook/dinov2-small \\
        --data images/ --data reviews.csv --out features/

Writes, for every model x dataset: OUT/<model>/<dataset>.npz (`features` [N, D], `labels` [N],
`probs` [N, Cs] when the model has a source head, `classes`; `test_*` arrays when the data has
a test split) — the layout `python -m tpred.score --features OUT` reads — and a JSON sidecar
(layer, preprocessing, sizes, seconds). OUT/models.csv and OUT/datasets.csv get rows measured
from the objects (parameters counted, FLOPs of one input, feature dimension, source labels,
class names, sizes), merged with earlier runs. A pair whose .npz exists is skipped (resume);
every failed pair and every unreadable item is a row of OUT/errors.csv with the reason, and the
rest of the run goes on (exit status 1 when a pair failed).

Model specs: hf:<hub id or folder>, timm:<name>, torchvision:<name>, torch:<file> (TorchScript;
with --trust also a pickled nn.Module or a torch.export .pt2 archive). Data: an ImageFolder-layout
folder (train/ and test/ when present), a `datasets` folder (save_to_disk) or hf:<name>, a text
.csv/.tsv/.jsonl (text,label[,split]).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

PROG = "python -m tpred.extract"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--models", help="comma-separated model specs")
    which.add_argument("--models-file", type=Path,
                       help="text file, one 'SPEC [NAME]' per line (# starts a comment)")
    parser.add_argument("--names", help="comma-separated model ids, one per spec (default: the "
                        "hub id or file/folder name)")
    parser.add_argument("--data", action="append", required=True, metavar="SOURCE",
                        help="data source (repeatable)")
    parser.add_argument("--data-names", help="comma-separated dataset ids, one per --data")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-pretrained", action="store_true",
                        help="random weights (the architecture only; for tests and dry runs)")
    parser.add_argument("--layer", help="module whose output gives the features (default: the "
                        "input of the classifier head)")
    parser.add_argument("--trust", action="store_true",
                        help="let model files run code: pickled nn.Module files, torch.export "
                        "archives, Hugging Face trust_remote_code (only for files you trust)")
    parser.add_argument("--image-size", type=int, help="resize/crop images to this size instead "
                        "of the model's own (timm, torchvision, torch:)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-amp", action="store_true", help="no float16 autocast on CUDA")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader processes reading items (default 0: in process)")
    parser.add_argument("--max-per-class", type=int,
                        help="at most N items per class and split (seeded, stratified)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of subsamples, carved splits and random weights")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--split-column", default="split")
    parser.add_argument("--image-column", help="image column of a datasets dataset")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="test share of a text table without a split column")
    parser.add_argument("--jobs", type=int, default=1,
                        help="parallel workers, one (model, dataset) pair each (-1: all cores)")
    parser.add_argument("--overwrite", action="store_true", help="redo finished pairs")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def read_models_file(path: Path) -> tuple[list[str], list[str] | None]:
    """Specs and names of a models file (`SPEC [NAME]` per line).

    Raises:
        ValueError: a missing file, a line with more than two fields, or no spec at all;
            names given on some lines only.
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


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    from tpred.extract import ExtractSettings, MissingExtraError, SourceOptions, extract

    try:
        if args.models_file is not None:
            specs, names = read_models_file(args.models_file)
            if args.names is not None:
                names = _split(args.names)
        else:
            specs, names = _split(args.models) or [], _split(args.names)
        settings = ExtractSettings(
            pretrained=not args.no_pretrained, layer=args.layer, trust=args.trust,
            image_size=args.image_size, seed=args.seed, device=args.device,
            batch_size=args.batch_size, amp=not args.no_amp, workers=args.workers,
            source=SourceOptions(max_per_class=args.max_per_class, seed=args.seed,
                                 text_column=args.text_column, label_column=args.label_column,
                                 split_column=args.split_column, image_column=args.image_column,
                                 test_fraction=args.test_fraction))
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        from tpred.extract.models import resolve_device

        resolve_device(args.device)
        summary = extract(specs, args.data, args.out, names=names,
                          dataset_names=_split(args.data_names), settings=settings,
                          jobs=args.jobs, overwrite=args.overwrite,
                          progress=not args.no_progress)
    except (ValueError, MissingExtraError) as err:  # bad input: one line, exit status 2
        parser.error(" ".join(str(err).split()))
    print(summary, file=sys.stderr)
    return 1 if summary.num_failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
