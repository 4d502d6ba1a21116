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

from tpred import parallel
from tpred.extract import options

PROG = "python -m tpred.extract"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="redo finished pairs")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    options.add_arguments(parser)
    parallel.add_arguments(parser, jobs_help="parallel workers, one (model, dataset) pair each")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    from tpred.extract import MissingExtraError, extract

    try:
        specs, names = options.models(args)
        summary = extract(specs, args.data, args.out, names=names,
                          dataset_names=options.split_list(args.data_names),
                          settings=options.settings(args), overwrite=args.overwrite,
                          progress=not args.no_progress, **parallel.options(args))
    except (ValueError, MissingExtraError) as err:  # bad input: one line, exit status 2
        parser.error(" ".join(str(err).split()))
    print(summary, file=sys.stderr)
    return 1 if summary.num_failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
