"""The registry of transferability metrics by name; `compute_pair` scores a pair with any of them.

`METRICS` maps a name to a `MetricSpec`: the function, what it reads (features, source-head
probabilities, or the source head's hard labels), whether it is random, and the per-dataset
combine step of metrics whose value depends on the pool of candidate models (NCTI). The feature
enhancers PED and Spread/Attract compose with any feature-based metric by name: `"ped+logme"`,
`"sa+ncti"` (`get_metric`).

Nothing heavy happens at import time: every function is imported on first call
(`LazyFunction`), so `import tpred.scores` and `python -m tpred.score --help` stay fast.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

Needs = Literal["features", "probs", "source_labels"]

#: enhancer prefix -> (module, function) of a feature transform [N, D] -> [N, D']
ENHANCERS: dict[str, tuple[str, str]] = {
    "ped": ("tpred.scores.enhance", "ped"),
    "sa": ("tpred.scores.enhance", "spread_attract"),
}


@dataclass(frozen=True)
class LazyFunction:
    """A module-level function imported on first call; picklable (it travels to joblib workers).

    Attributes:
        module: dotted module path, e.g. `"tpred.scores.logme"`.
        qualname: the function's name in that module.
    """

    module: str
    qualname: str

    def resolve(self) -> Callable[..., Any]:
        """The real function (imports its module)."""
        return getattr(importlib.import_module(self.module), self.qualname)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{self.module}.{self.qualname}"


@dataclass(frozen=True)
class Enhanced:
    """`base(enhancer(features, labels), labels, **kwargs)`: a feature enhancer, then a metric.

    Options (e.g. `random_state`) go to the base metric; the enhancers run at their defaults
    (PED without `general_X` standardises by the target features' own statistics).
    """

    enhancer: LazyFunction
    base: Callable[..., Any]

    def __call__(self, features, labels, **kwargs: Any) -> Any:
        return self.base(self.enhancer(features, labels), labels, **kwargs)

    def __repr__(self) -> str:
        return f"{self.base!r} o {self.enhancer!r}"


@dataclass(frozen=True)
class MetricSpec:
    """One registered metric.

    Attributes:
        name: registry name (`"logme"`, `"ped+sfda"`, ...).
        fn: `fn(features, labels, **opts)`, `fn(probs, labels)` or `fn(source_labels, labels)`
            according to `needs`; returns a float, or a tuple of components when `combine` is set.
        needs: `"features"` [N, D], `"probs"` (source-head softmax [N, Cs]) or
            `"source_labels"` (its argmax [N]).
        random: whether `fn` takes `random_state` (int or None).
        combine: per-dataset step turning the components of every candidate model of one
            dataset into one float per model (NCTI's min-max normalisation), or None.
        higher_is_better: orientation; True for every metric of the field.
        description: one line: paper and what it measures.
    """

    name: str
    fn: Callable[..., Any]
    needs: Needs
    random: bool = False
    combine: Callable[[list[tuple[float, ...]]], list[float]] | None = None
    higher_is_better: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.needs not in get_args(Needs):
            raise ValueError(f"MetricSpec.needs must be one of {get_args(Needs)}, "
                             f"got {self.needs!r}")


def _spec(name: str, module: str, qualname: str, needs: Needs, description: str, *,
          random: bool = False, combine: str | None = None) -> MetricSpec:
    mod = f"tpred.scores.{module}"
    return MetricSpec(name=name, fn=LazyFunction(mod, qualname), needs=needs, random=random,
                      combine=LazyFunction(mod, combine) if combine else None,
                      description=description)


#: name -> MetricSpec of every base metric (composed "ped+<base>"/"sa+<base>": `get_metric`)
METRICS: dict[str, MetricSpec] = {s.name: s for s in [
    _spec("logme", "logme", "logme", "features",
          "LogME (You et al., ICML 2021): log maximum evidence of a Bayesian linear head"),
    _spec("leep", "leep", "leep", "probs",
          "LEEP (Nguyen et al., ICML 2020): log expected empirical prediction of the source head"),
    _spec("nce", "nce", "nce", "source_labels",
          "NCE (Tran et al., ICCV 2019): negative conditional entropy H(Y | source label)"),
    _spec("hscore", "hscore", "hscore", "features",
          "H-score (Bao et al., ICIP 2019): tr(pinv(cov f) cov E[f|y])"),
    _spec("hscore_shrinkage", "hscore", "hscore_shrinkage", "features",
          "H-score with Ledoit-Wolf shrinkage (Ibrahim et al., ECML-PKDD 2022)"),
    _spec("nleep", "nleep", "nleep", "features",
          "N-LEEP (Li et al., CVPR 2021): LEEP over a Gaussian mixture fitted to PCA features",
          random=True),
    _spec("sfda", "sfda", "sfda", "features",
          "SFDA (Shao et al., ECCV 2022): self-challenging Fisher discriminant posterior"),
    _spec("gbc", "gbc", "gbc", "features",
          "GBC (Pandy et al., CVPR 2022): minus the summed Bhattacharyya coefficients"),
    _spec("parc", "parc", "parc", "features",
          "PARC (Bolya et al., NeurIPS 2021): Spearman of feature vs label dissimilarities"),
    _spec("transrate", "transrate", "transrate", "features",
          "TransRate (Huang et al., ICML 2022): coding rate of features minus class average"),
    _spec("ncti", "ncti", "ncti_components", "features",
          "NCTI (Wang et al., ICCV 2023): neural-collapse index, min-max normalised over the "
          "candidate models of a dataset", random=True, combine="ncti_combine"),
]}


def _choices() -> str:
    names = sorted(METRICS) + [f"{e}+<base>" for e in ENHANCERS]
    return "{" + ", ".join(names) + "}"


@functools.cache
def get_metric(name: str) -> MetricSpec:
    """The `MetricSpec` of a base name (`"logme"`) or a composed one (`"ped+logme"`, `"sa+ncti"`).

    A composed name runs the enhancer on the features, then the base metric; it keeps the base's
    `random` and `combine`. Only feature-based bases compose.

    Raises:
        ValueError: unknown name (the message lists the valid ones), or an enhancer composed with
            a metric that does not read features.
    """
    if not isinstance(name, str):
        raise TypeError(f"get_metric: name must be a str, got {type(name).__name__}")
    if name in METRICS:
        return METRICS[name]
    prefix, plus, base_name = name.partition("+")
    if plus and prefix in ENHANCERS and base_name in METRICS:
        base = METRICS[base_name]
        if base.needs != "features":
            raise ValueError(f"Could not resolve {name!r}: enhancer {prefix!r} transforms "
                             f"features, but {base_name!r} reads {base.needs}; compose it with "
                             "a feature-based metric")
        return MetricSpec(name=name, fn=Enhanced(LazyFunction(*ENHANCERS[prefix]), base.fn),
                          needs="features", random=base.random, combine=base.combine,
                          higher_is_better=base.higher_is_better,
                          description=f"{prefix} feature enhancement, then {base.description}")
    raise ValueError(f"Could not resolve {name!r} among choices {_choices()}")


def source_labels_from_probs(probs, num_samples: int, *, name: str = "nce") -> np.ndarray:
    """Hard source labels (argmax over source classes) of source-head probabilities.

    Shapes: probs [N, Cs] -> [N] int.

    Raises:
        ValueError: probs not 2-D, not N rows, empty, or not finite.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] != num_samples or probs.shape[1] == 0:
        raise ValueError(f"{name}: probs must have shape ({num_samples}, Cs) with Cs >= 1, "
                         f"got {probs.shape}")
    if not np.isfinite(probs).all():
        raise ValueError(f"{name}: probs contain NaN or inf")
    return probs.argmax(axis=1)


def compute_pair(name: str, features=None, labels=None, probs=None, random_state: int | None = None
                 ) -> float | tuple[float, ...]:
    """Score one (model, dataset) pair with metric `name`.

    Args:
        name: a `METRICS` name or a composed one (`get_metric`).
        features: [N, D] target features of the model (feature-based metrics).
        labels: [N] target labels, any hashable values.
        probs: [N, Cs] source-head probabilities (`leep`; `nce` uses their argmax).
        random_state: seed for random metrics; ignored by the others.

    Returns:
        A Python float; for metrics with a combine step (NCTI) the tuple of per-pair components,
        which `MetricSpec.combine` turns into scores once every model of the dataset is scored.

    Raises:
        ValueError: unknown name, a needed input is missing, or the metric rejects the input
            (NaN, shapes, a class with one sample, ...).
    """
    spec = get_metric(name)
    if labels is None:
        raise ValueError(f"{name}: labels are required")
    if spec.needs == "features":
        if features is None:
            raise ValueError(f"{name}: needs features [N, D]; none given")
        kwargs = {"random_state": random_state} if spec.random else {}
        out = spec.fn(features, labels, **kwargs)
    elif probs is None:
        raise ValueError(f"{name}: needs source-head probabilities 'probs' [N, Cs]; none given")
    elif spec.needs == "probs":
        out = spec.fn(probs, labels)
    else:
        out = spec.fn(source_labels_from_probs(probs, len(np.asarray(labels)), name=name), labels)
    if spec.combine is not None:
        return tuple(float(x) for x in out)
    return float(out)
