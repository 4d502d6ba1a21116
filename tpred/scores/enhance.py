"""Feature enhancers applied before a base metric: PED and Spread/Attract.

Both move every class rigidly (all its samples by the same vector) according to how its mean
and radius sit relative to the other classes; the registry composes them with any metric by
name (``"ped+logme"``, ``"sa+ncti"``).
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA

from tpred.scores._checks import check_features_labels

_SA_DIMS = 64              # PCA size of Spread/Attract's reference
_PCA_SEED = 1919           # its fixed PCA seed (randomized solver, iterated_power=1)
_SA_GATE = 1e-9            # the transform runs iff max(exp(-5 m), 1e-10) < 1e-9
_SA_GATE_FLOOR = 1e-10
_SAME_MEAN = 1e-12         # relative distance below which two class means coincide


def _class_geometry(x: np.ndarray, onehot: np.ndarray):
    """Class means [C, D], radii R_c = sqrt(sum_d biased var_c[d]) [C], distances d_ab [C, C]."""
    counts = onehot.sum(axis=0)[:, None]                                     # [C, 1]
    means = onehot.T @ x / counts                                            # [C, D]
    y = onehot.argmax(axis=1)
    radius = np.sqrt((onehot.T @ (x - means[y]) ** 2 / counts).sum(axis=1))   # [C]
    return means, radius, cdist(means, means)                                # [C, C] exact


def _pair_shift(coeff: np.ndarray, means: np.ndarray, radius: np.ndarray, dist: np.ndarray,
                name: str) -> np.ndarray:
    """Per-class shift sum_b coeff_ab (mu_a - mu_b) / d_ab; a pair with coeff 0 adds nothing.

    Two means closer than round-off (1e-12 of the classes' extent) have no direction between
    them; the references divide by ~0 there and move the classes along noise, tpred raises.

    Shapes: coeff [C, C] (diagonal ignored), means [C, D], radius [C], dist [C, C].
    Returns [C, D].
    """
    coeff = coeff.copy()
    np.fill_diagonal(coeff, 0.0)
    tiny = _SAME_MEAN * (np.abs(means).max() + radius.max())
    if (same := (dist <= tiny) & (coeff != 0)).any():
        a, b = np.argwhere(same)[0]
        raise ValueError(f"{name}: classes {a} and {b} (after re-encoding the labels to 0..C-1) "
                         f"have identical means, so the direction that separates them is "
                         f"undefined")
    unit = np.divide(coeff, dist, out=np.zeros_like(coeff), where=coeff != 0)   # [C, C]
    # sum_b u_ab (mu_a - mu_b) without the [C, C, D] array of differences
    return unit.sum(axis=1)[:, None] * means - unit @ means                  # [C, D]


def _check_positive(name: str, caller: str, value, *, integer: bool = False,
                    allow_zero: bool = False) -> None:
    ok = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(
        value, bool) and np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "int" if integer else "finite number"
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"The {name!r} parameter of {caller} must be a {kind} {rule}. "
                         f"Got {value!r} instead.")


def ped(features, labels, *, general_X=None, nsigma: float = 0.6, time_step: float = 0.1,
        exit_ratio: float = 0.5, constant: float = 1.0, eps: float = 1e-3,
        max_steps: int = 6) -> np.ndarray:
    r"""PED feature dynamics (Li et al., "Exploring Model Transferability through the Lens of
    Potential Energy", ICCV 2023): overlapping classes repel; score the result with any metric.

    `arXiv:2308.15074 <https://arxiv.org/abs/2308.15074>`_. One step on the current features X,
    as the authors' code: rescale :math:`Z = (X - m_g)/s_g` with the mean and biased std
    (floored at ``eps``) of ``general_X``; per class the mean :math:`\mu_c` and the radius
    :math:`R_c = \sqrt{\sum_d \mathrm{var}_c[d]}` (biased) in Z; for each pair the overlap
    :math:`F_{ab} = \max(\nu(R_a + R_b) - d_{ab}, 0)` and the step
    :math:`\ell_{ab} = \min(\tfrac12\Delta t^2 k F_{ab}, F_{ab})`; class a moves by
    :math:`\Delta_a = \sum_b \ell_{ab}(\mu_a - \mu_b)/d_{ab}` in Z, i.e.
    :math:`X \leftarrow X + \Delta_{y} \odot s_g`; change = :math:`\sum_{c,d} |\Delta_c[d]|`.
    Step 0 is always taken; a later step is kept only while change / change_0 > ``exit_ratio``
    (otherwise the loop stops and that step is discarded); at most ``max_steps`` steps.
    No overlapping pair (change_0 = 0) returns the features unchanged.

    At the defaults each step separates each overlapping pair by 1 % of its overlap: a small
    perturbation.

    Args:
        features: [N, D] target features (any float dtype; computed in float64).
        labels: [N] target labels, any hashable values.
        general_X: [M, D] the same model's features on a generic set (ImageNet val in the
            paper), used only for the rescaling statistics. The reference requires it; when
            None tpred uses the target ``features`` themselves (their statistics, fixed across
            steps) — a documented fallback, not reference behaviour.
        nsigma: overlap factor :math:`\nu` (the released driver's 0.6; the function default
            in the reference code is 2.0).
        time_step: :math:`\Delta t` (0.1, as ``PED_Score`` and the driver).
        exit_ratio: stop once a step's change falls to this fraction of the first step's.
        constant: the spring constant k.
        eps: floor of ``general_X``'s per-dimension std.
        max_steps: most steps (6, hard-coded in the reference).

    Shapes:
        features [N, D]; labels [N]; general_X [M, D]. Returns a new float64 array [N, D].

    Raises:
        ValueError: invalid inputs (see ``check_features_labels``), a ``general_X`` that is not
            a finite non-empty [M, D] array, an invalid parameter, or two overlapping classes
            with identical means up to round-off (the reference divides by ~zero there).
    """
    x, y, num_classes = check_features_labels(features, labels, name="ped")
    for name, value in [("nsigma", nsigma), ("exit_ratio", exit_ratio)]:
        _check_positive(name, "ped", value, allow_zero=True)
    for name, value in [("time_step", time_step), ("constant", constant), ("eps", eps)]:
        _check_positive(name, "ped", value)
    _check_positive("max_steps", "ped", max_steps, integer=True)
    if general_X is None:
        general = x
    else:
        general = np.asarray(general_X, dtype=np.float64)
        if general.ndim != 2 or general.shape[1] != x.shape[1] or len(general) == 0:
            raise ValueError(f"ped: general_X must have shape [M >= 1, {x.shape[1]}], got "
                             f"{general.shape}")
        if not np.isfinite(general).all():
            raise ValueError("ped: general_X contains NaN or inf")
    centre = general.mean(axis=0)                                            # [D]
    scale = np.maximum(general.std(axis=0), eps)                             # [D] biased std
    onehot = np.eye(num_classes)[y]                                          # [N, C]
    step_size = 0.5 * time_step**2 * constant

    first_change = None
    for step in range(max_steps):
        means, radius, dist = _class_geometry((x - centre) / scale, onehot)
        overlap = np.maximum(nsigma * (radius[:, None] + radius[None, :]) - dist, 0.0)  # [C, C]
        shift = _pair_shift(np.minimum(step_size * overlap, overlap), means, radius, dist,
                            "ped")
        change = np.abs(shift).sum()
        if step == 0:
            first_change = change
            if first_change == 0:  # no overlapping pair: nothing moves
                break
        elif not change / first_change > exit_ratio:
            break
        x = x + shift[y] * scale                                             # [N, D]
    return x


def spread_attract(features, labels, *, alpha: float = 0.005, sigma: float = 0.6,
                   spread: bool = False) -> np.ndarray:
    r"""Spread/Attract feature perturbation (Khoba et al., "Feature Space Perturbation: A
    Panacea to Enhanced Transferability Estimation", WACV 2025); score the result with any
    metric.

    What the authors' code computes (the published numbers):

    1. Gate: m = mean of the two largest eigenvalues of the biased total covariance; the
       transform runs only if :math:`\max(e^{-5m}, 10^{-10}) < 10^{-9}`, i.e.
       :math:`m > 9\ln 10/5 \approx 4.1447`. Otherwise the features come back unchanged
       (a float64 copy, D columns). The gate depends on the features' absolute scale.
    2. ``PCA(64, svd_solver='randomized', random_state=1919, iterated_power=1)``.
    3. Attract on the PCA output: class means, biased radii :math:`R_c`, and
       :math:`\Delta_a = \alpha\sum_{b\ne a}(d_{ab} - \sigma(R_a + R_b))(\mu_a-\mu_b)/d_{ab}`;
       output :math:`X_r + \Delta_y`. Pairs closer than :math:`\sigma(R_a+R_b)` are pulled
       together, pairs farther apart pushed apart.

    The reference also computes "Spread" and then overwrites it (dead code), so by default it
    is skipped. ``spread=True`` applies the paper's described Spread first — every point moved
    one unit away from its class mean along the line from the mean (a point on its mean stays)
    — and Attract on the result; this is not what produced the published numbers.

    Deviation: with fewer than 64 samples or dimensions the reference raises (sklearn); tpred
    uses ``min(N, D, 64)`` components. If D = 1 the gate uses the single eigenvalue.

    Args:
        features: [N, D] target features (any float dtype; computed in float64).
        labels: [N] target labels, any hashable values.
        alpha: step size of Attract.
        sigma: radius factor of Attract.
        spread: apply the paper's Spread before Attract (off: the reference's behaviour).

    Shapes:
        features [N, D]; labels [N]. Returns a new float64 array: [N, D] when the gate is
        off, [N, min(N, D, 64)] when it is on.

    Raises:
        ValueError: invalid inputs (see ``check_features_labels``), a negative or non-finite
            ``alpha``/``sigma``, or two classes with identical means (up to round-off) whose
            Attract coefficient is nonzero (the direction between them is undefined).
    """
    x, y, num_classes = check_features_labels(features, labels, name="spread_attract")
    _check_positive("alpha", "spread_attract", alpha, allow_zero=True)
    _check_positive("sigma", "spread_attract", sigma, allow_zero=True)
    n, d = x.shape
    centred = x - x.mean(axis=0)                                             # [N, D]
    # The nonzero eigenvalues of the covariance C^T C / N equal those of the Gram C C^T / N:
    # decompose the smaller of the two; only the top two are needed.
    gram = centred.T @ centred if d <= n else centred @ centred.T            # [min, min]
    size = len(gram)
    top = scipy.linalg.eigh(gram / n, eigvals_only=True,
                            subset_by_index=[max(size - 2, 0), size - 1])
    gate = max(np.exp(-5 * top.mean()), _SA_GATE_FLOOR)
    if not gate < _SA_GATE:
        return x

    k = min(_SA_DIMS, n, d)
    reduced = PCA(n_components=k, svd_solver="randomized", random_state=_PCA_SEED,
                  iterated_power=1).fit_transform(x)                         # [N, k]
    onehot = np.eye(num_classes)[y]                                          # [N, C]
    if spread:
        means = onehot.T @ reduced / onehot.sum(axis=0)[:, None]             # [C, k]
        away = reduced - means[y]                                            # [N, k]
        norm = np.linalg.norm(away, axis=1, keepdims=True)
        reduced = reduced + np.divide(away, norm, out=np.zeros_like(away), where=norm > 0)
    means, radius, dist = _class_geometry(reduced, onehot)
    coeff = alpha * (dist - sigma * (radius[:, None] + radius[None, :]))     # [C, C]
    return reduced + _pair_shift(coeff, means, radius, dist, "spread_attract")[y]  # [N, k]
