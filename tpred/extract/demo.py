"""Small offline data sources to try `tpred.extract` with (and to test it): digit images written
as an image folder, short topic sentences written as a text table.

    python -m tpred.extract.demo --out demo/     # demo/digits-<a>-<b>-<c>/{train,test}/<class>/
                                                 # and demo/topics.csv
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: topic -> words; train sentences use the first five words, test sentences the other three
TOPIC_WORDS = {
    "sports": ["goal", "match", "team", "score", "league", "coach", "player", "season"],
    "food": ["pasta", "bread", "cheese", "soup", "salad", "recipe", "spice", "dessert"],
    "weather": ["rain", "storm", "sunny", "cloud", "wind", "snow", "forecast", "humid"],
}
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_digit_folder(root: str | Path, *, classes: Sequence[int] = (0, 1, 2),
                       per_class: int = 6, test_per_class: int = 3, size: int = 16,
                       seed: int = 0) -> Path:
    """`sklearn.datasets.load_digits` images as grayscale PNGs in `root/{train,test}/<name>/`.

    Args:
        root: the folder to create (ImageFolder layout with train/ and test/).
        classes: digits to include (class folders are named `zero`, `one`, ...).
        per_class, test_per_class: images per class in each split (disjoint).
        size: side of the written images (the 8x8 digits are upscaled).
        seed: which images are drawn.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for c in classes:
        members = rng.permutation(np.flatnonzero(digits.target == c))
        for split, chosen in (("train", members[:per_class]),
                              ("test", members[per_class:per_class + test_per_class])):
            folder = root / split / DIGIT_NAMES[c]
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)            # [8, 8]
                Image.fromarray(pixels).resize((size, size)).save(folder / f"{i}.png")
    return root


def write_topic_table(path: str | Path, *, per_class: int = 6, test_per_class: int = 3,
                      seed: int = 0) -> Path:
    """A CSV `text,label,split` of short sentences on three topics; test sentences use topic
    words that no training sentence uses (features must generalise, not memorise tokens)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, words in TOPIC_WORDS.items():
        for split, pool, n in (("train", words[:5], per_class),
                               ("test", words[5:], test_per_class)):
            for _ in range(n):
                a, b = rng.choice(pool, size=2, replace=False)
                rows.append((f"the {a} and the {b}", label, split))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(path, index=False)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tpred.extract.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--per-class", type=int, default=30, help="training images per class")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    args = parser.parse_args(argv)
    tasks = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (1, 7, 9)]
    for classes in tasks:
        name = "digits-" + "-".join(DIGIT_NAMES[c] for c in classes)
        write_digit_folder(args.out / name, classes=classes, per_class=args.per_class,
                           test_per_class=args.per_class // 2, size=args.size)
    write_topic_table(args.out / "topics.csv", per_class=args.per_class,
                      test_per_class=args.per_class // 2)
    print(f"{args.out}: {len(tasks)} image folders and topics.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
