"""Target tasks of the digits zoo: domain × number of classes × samples per class × label division,
built the way DomainNet-270's tasks were (../shared/benchmarks/domainnet270/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIVISIONS = ("a", "b", "c")


@dataclass(frozen=True)
class TargetSpec:
    """One target dataset.

    Args:
        dataset: id, `<domain>_<num_classes><division>_<samples_per_class>`, e.g. `noisy_4b_10`.
        domain: a key of `tpred.zoo.domains.DOMAINS`.
        classes: digits (0..9) of the task, sorted.
        samples_per_class: training images per class.
        division: label division, `a`, `b` or `c`.
    """

    dataset: str
    domain: str
    classes: tuple[int, ...]
    samples_per_class: int
    division: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def labels(self) -> str:
        """Class names, comma-separated as in DomainNet-270's datasets.csv."""
        return ", ".join(CLASS_NAMES[c] for c in self.classes)


def label_divisions(num_classes: int, rng: np.random.Generator) -> dict[str, tuple[int, ...]]:
    """Three class subsets of size `num_classes` of the 10 digits (DomainNet's scheme).

    A is the first `num_classes` digits of a random permutation, C the last `num_classes` (disjoint
    from A when 2·num_classes ≤ 10), B the first half of A plus the last half of C.

    Raises:
        ValueError: num_classes not in 2..10.
    """
    if not 2 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(f"label_divisions: num_classes must be in 2..10, got {num_classes}")
    perm = rng.permutation(len(CLASS_NAMES))
    first = num_classes // 2
    division_a = perm[:num_classes]
    division_c = perm[len(perm) - num_classes:]
    division_b = np.concatenate([division_a[:first], perm[len(perm) - (num_classes - first):]])
    return {name: tuple(sorted(int(c) for c in div))
            for name, div in zip(DIVISIONS, (division_a, division_b, division_c), strict=True)}


def make_targets(domains: Sequence[str], num_classes: Sequence[int],
                 samples_per_class: Sequence[int], divisions: Sequence[str] = DIVISIONS,
                 *, seed: int = 0) -> list[TargetSpec]:
    """Every combination domain × num_classes × division × samples_per_class.

    The label sets depend only on (num_classes, division), so the same task appears in every
    domain and at every sample size, as in DomainNet-270.

    Raises:
        ValueError: an unknown division.
    """
    if bad := sorted(set(divisions) - set(DIVISIONS)):
        raise ValueError(f"make_targets: unknown division(s) {bad}; valid: {list(DIVISIONS)}")
    tasks = {n: label_divisions(n, np.random.default_rng([seed, 2024, n])) for n in num_classes}
    return [TargetSpec(f"{domain}_{n}{div}_{spc}", domain, tasks[n][div], spc, div)
            for domain in domains for spc in samples_per_class
            for n in num_classes for div in divisions]
