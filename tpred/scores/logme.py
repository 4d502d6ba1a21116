"""LogME: log maximum evidence of a Bayesian linear model on frozen features (metrics.md §1).

You, Liu, Wang, Long, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
ICML 2021, https://arxiv.org/abs/2102.11005; fixed-point solver from You et al., "Ranking and
Tuning Pre-trained Models", JMLR 2022, https://arxiv.org/abs/2110.10545.

Per target t ∈ R^N (a class indicator 1[y = c], or a regression column), with prior
w ~ N(0, α⁻¹I_D) and likelihood t ~ N(Fw, β⁻¹I_N), the log evidence is

    L(α, β) = D/2·log α + N/2·log β − N/2·log 2π − β/2·‖t − Fm‖² − α/2·‖m‖² − 1/2·log det A,

A = αI + βFᵀF, m = βA⁻¹Fᵀt. LogME maximises it over α, β by the JMLR fixed point and reports
L*/N averaged over targets. This matches thuml/LogME's `_fit_fixed_point` with the N < D fix of
thuml issue #23 / PR #24: log det A sums over all D eigenvalues of FᵀF (the D − rank zero ones
contribute log α each); for N > D that is the original code.

How it is computed (the original casts F to float64, does an SVD, builds U = FV/s [N, k] and
loops over classes):

* one eigendecomposition of FᵀF [D, D] (or of FFᵀ [N, N] when N ≤ D), accumulated in float64
  from blocks of F (`_gram.py`), so a float32 input never gets a full float64 copy. A float32
  FᵀF would be ~2.5× faster to form but loses the small eigenvalues: on nearly low-rank
  features (rank 64 + 1e-3 noise, N = 10,000, D = 1,024) it changed the score by 36 %;
* x = Uᵀt for every target at once from the class sums FᵀT [D, C] (no [N, k] matrix U);
* the fixed point runs on all targets together as [T, k] arrays; a target that has converged is
  frozen, so each target goes through exactly the arithmetic of a per-target loop;
* on a CUDA device (default when `torch.cuda.is_available()`) the Gram, eigendecomposition and
  projections run in torch float64; the fixed point (O(T·k) per pass) stays in numpy.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from tpred.errors import NotFittedError
from tpred.scores._gram import (
    block_size,
    check_labels,
    check_matrix,
    eigh_inplace,
    gram_not_finite,
    gram_pass,
    raise_if_not_finite,
    row_gram,
)

MAX_ITER = 11        # fixed-point passes, as the reference
TOL = 1e-3           # stop when |α/β − λ| / λ ≤ TOL
GUARD = 1e-5         # added to ‖m‖², ‖t − Fm‖²: keeps α, β finite for exact fits / absent targets
SIGMA_MIN = 1e-20    # eigenvalues kept iff s = √σ > 1e-10, as the reference (N > D)
TORCH_BLOCK_ELEMS = 1 << 24  # float64 elements per block on a torch device (128 MiB)


@dataclass(frozen=True)
class _Spectrum:
    """Spectral data of F and the targets' projections, backend-independent (numpy float64).

    Shapes: sigma [k]; x2 [T, k] (squared coordinates of each target in the left singular
    basis); r0 [T] (energy of t outside the column space of F); proj [T, k] (N > D: Vᵀ Fᵀ t;
    N ≤ D: Uᵀ t), used with `basis` for the weights.
    """

    sigma: np.ndarray
    x2: np.ndarray
    r0: np.ndarray
    proj: np.ndarray
    wide: bool          # N ≤ D: basis is U [N, k] and weights need Fᵀ
    basis: object       # V [D, k] or U [N, k], numpy or torch


def _fixed_point(sigma: np.ndarray, x2: np.ndarray, r0: np.ndarray, n: int):
    """Run the fixed point for all T targets together; freeze each target once converged.

    Args:
        sigma: the k eigenvalues σ_i = s_i² > 1e-20 [k] (k ≤ min(N, D); the others are 0).
        x2: squared projections [T, k]. r0: residual energy outside the column space [T].
        n: N.

    Returns:
        (evidence / N [T], α [T], β [T], λ of the last pass [T])
    """
    num_targets, k = x2.shape
    alpha, beta = np.ones(num_targets), np.ones(num_targets)
    lam, m2, res2 = np.ones(num_targets), np.zeros(num_targets), np.zeros(num_targets)
    active = np.arange(num_targets)
    s = sigma[None, :]                                                     # [1, k]
    for _ in range(MAX_ITER):
        lam_a = (alpha[active] / beta[active])[:, None]                   # [A, 1]
        xa = x2[active]                                                    # [A, k]
        gamma = (s / (s + lam_a)).sum(axis=1)                              # [A] effective params
        m2_a = (s * xa / (lam_a + s) ** 2).sum(axis=1)                     # [A] ‖m‖²
        res2_a = (xa / (1 + s / lam_a) ** 2).sum(axis=1) + r0[active]      # [A] ‖t − Fm‖²
        alpha_a = gamma / (m2_a + GUARD)
        beta_a = (n - gamma) / (res2_a + GUARD)
        alpha[active], beta[active] = alpha_a, beta_a
        lam[active], m2[active], res2[active] = lam_a[:, 0], m2_a, res2_a
        with np.errstate(divide="ignore", invalid="ignore"):  # λ = 0 only when k = 0 (F = 0)
            done = np.abs(alpha_a / beta_a - lam_a[:, 0]) / lam_a[:, 0] <= TOL
        active = active[~done]
        if active.size == 0:
            break
    # log det A has D terms: the k computed ones plus (D − k)·log α for the zero eigenvalues
    # (thuml PR #24). Those cancel D/2·log α down to k/2·log α (finite even when k = 0, α = 0).
    logdet_k = np.log(alpha[:, None] + beta[:, None] * s).sum(axis=1)
    log_alpha = k / 2 * np.log(alpha) if k else 0.0
    evidence = (log_alpha + n / 2 * np.log(beta) - logdet_k / 2
                - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi))
    return evidence / n, alpha, beta, lam


def _spectrum_numpy(f: np.ndarray, y: np.ndarray | None, num_classes: int,
                    targets: np.ndarray | None, tnorm2: np.ndarray, name: str) -> _Spectrum:
    n, d = f.shape
    if n > d:
        acc = gram_pass(f, labels=y, num_classes=num_classes, targets=targets)
        if gram_not_finite(acc.gram):
            raise_if_not_finite(f, name=name)
        sigma, v = eigh_inplace(acc.gram)                                  # [D], [D, D]
        first = int(np.searchsorted(sigma, SIGMA_MIN, side="right"))      # ascending order
        sigma, v = sigma[first:], v[:, first:]                             # [k], [D, k]
        ft_t = acc.class_sums.T if targets is None else acc.cross          # [D, T] = Fᵀ T
        proj = (v.T @ ft_t).T                                              # [T, k] = s·x
        x2 = proj ** 2 / sigma
        return _Spectrum(sigma, x2, tnorm2 - x2.sum(axis=1), proj, False, v)
    gram = row_gram(f)                                                     # [N, N] = F Fᵀ
    if gram_not_finite(gram):
        raise_if_not_finite(f, name=name)
    sigma, u = eigh_inplace(gram)                                          # [N], [N, N]
    # drop zero (and round-off negative) eigenvalues: dropping σ = 0 is exact (its energy goes
    # to r0, its log α to the padding); the reference's σ = s² ≤ 1e-20 terms are negligible
    first = int(np.searchsorted(sigma, SIGMA_MIN, side="right"))
    sigma, u = sigma[first:], u[:, first:]                                 # [k], [N, k]
    if targets is None:
        x = _class_sums_of_rows(u, y, num_classes)                         # [C, N] = (Uᵀ T)ᵀ
    else:
        x = (u.T @ targets).T                                              # [K, N]
    x2 = x ** 2
    return _Spectrum(sigma, x2, tnorm2 - x2.sum(axis=1), x, True, u)


def _class_sums_of_rows(a: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Σ_{i: y_i = c} a_i for every class: [C, ...] from [N, ...], O(N·cols)."""
    import scipy.sparse as sp

    onehot = sp.csr_matrix((np.ones(len(y)), (y, np.arange(len(y)))),
                           shape=(num_classes, len(y)))
    return np.asarray(onehot @ a)


def _spectrum_torch(f: np.ndarray, y: np.ndarray | None, num_classes: int,
                    targets: np.ndarray | None, tnorm2: np.ndarray, name: str,
                    device) -> _Spectrum:
    import torch

    dev = torch.device(device)
    n, d = f.shape
    f64 = torch.float64
    yt = None if y is None else torch.as_tensor(y, device=dev)
    tt = None if targets is None else torch.as_tensor(targets, device=dev)

    def block(rows=slice(None), cols=slice(None)):
        return torch.as_tensor(np.ascontiguousarray(f[rows, cols])).to(dev).to(f64)

    if n > d:
        step = max(1, TORCH_BLOCK_ELEMS // d)
        gram = torch.zeros(d, d, dtype=f64, device=dev)
        # Tᵀ F [T, D]: class sums (classification) or target cross products (regression)
        t_f = torch.zeros(num_classes if tt is None else tt.shape[1], d, dtype=f64, device=dev)
        for start in range(0, n, step):
            b = block(rows=slice(start, start + step))                     # [b, D]
            gram.addmm_(b.T, b)
            if tt is None:
                t_f.index_add_(0, yt[start:start + step], b)
            else:
                t_f.addmm_(tt[start:start + step].T, b)
        if not torch.isfinite(torch.diagonal(gram)).all():
            raise_if_not_finite(f, name=name)
        sigma, v = torch.linalg.eigh(gram)
        keep = sigma > SIGMA_MIN
        sigma, v = sigma[keep], v[:, keep]
        proj = t_f @ v                                                     # [T, k]
        sig_np, proj_np = sigma.cpu().numpy(), proj.cpu().numpy()
        x2 = proj_np ** 2 / sig_np
        return _Spectrum(sig_np, x2, tnorm2 - x2.sum(axis=1), proj_np, False, v)
    step = max(1, TORCH_BLOCK_ELEMS // n)
    gram = torch.zeros(n, n, dtype=f64, device=dev)
    for start in range(0, d, step):
        b = block(cols=slice(start, start + step))                         # [N, b]
        gram.addmm_(b, b.T)
    if not torch.isfinite(torch.diagonal(gram)).all():
        raise_if_not_finite(f, name=name)
    sigma, u = torch.linalg.eigh(gram)
    keep = sigma > SIGMA_MIN
    sigma, u = sigma[keep], u[:, keep]
    if tt is None:
        x = torch.zeros(num_classes, n, dtype=f64, device=dev).index_add_(0, yt, u)
    else:
        x = (u.T @ tt).T
    sig_np, x_np = sigma.cpu().numpy(), x.cpu().numpy()
    x2 = x_np ** 2
    return _Spectrum(sig_np, x2, tnorm2 - x2.sum(axis=1), x_np, True, u)


def _weights(spec: _Spectrum, lam: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Posterior means m = V diag(s/(σ + λ)) x for every target: [T, D] float64."""
    coef = spec.proj / (spec.sigma[None, :] + lam[:, None])               # [T, k]
    basis = spec.basis
    if not isinstance(basis, np.ndarray):  # torch tensor
        import torch

        coef_t = torch.as_tensor(coef, device=basis.device)
        if not spec.wide:
            return (coef_t @ basis.T).cpu().numpy()                        # [T, D]
        w = (basis @ coef_t.T).cpu().numpy()                               # [N, T]
    elif not spec.wide:
        return coef @ basis.T                                              # [T, D]
    else:
        w = basis @ coef.T                                                 # [N, T]
    # N ≤ D: V diag(s/(σ+λ)) x = Fᵀ U diag(1/(σ+λ)) x; multiply by F in column blocks
    n, d = f.shape
    out = np.empty((w.shape[1], d))
    step = block_size(d, n)
    for start in range(0, d, step):
        out[:, start:start + step] = w.T @ np.asarray(f[:, start:start + step], dtype=np.float64)
    return out


@functools.cache
def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _use_torch(device) -> object | None:
    """None for the numpy path, else the torch device to use."""
    if device is None:
        return "cuda" if _cuda_available() else None
    if device == "numpy":
        return None
    return device


class LogME:
    """LogME with the scikit-learn-like API of the original code: `fit` returns the score.

    Args:
        regression: targets are real-valued [N] or [N, K] instead of class labels.
        device: None (default: CUDA through torch when available, else numpy), "numpy", or a
            torch device ("cpu", "cuda", "cuda:1", ...) for the Gram/eigendecomposition step.

    Attributes (after `fit`):
        alphas, betas: [T] the maximising α, β per target (T = C classes or K columns).
        ms: [T, D] posterior mean weights per target.
        evidences: [T] L*/N per target; the score is their mean.
        classes_: [C] original label values (classification).
        n_features_in_: D.

    Shapes: features [N, D] (any real dtype, never modified); targets [N] labels (any hashable
    values, remapped to 0..C−1 in sorted order) or, with `regression=True`, [N] or [N, K] floats.
    """

    def __init__(self, regression: bool = False, *, device=None) -> None:
        self.regression = regression
        self.device = device

    def fit(self, features, targets) -> float:
        """Compute LogME of (features, targets), keep α, β, m per target; return the score.

        Raises:
            ValueError: features not 2-D / empty / NaN / inf; targets of the wrong shape;
                classification: fewer than 2 classes or a class with one sample; regression:
                NaN / inf targets.
        """
        score, spec, f = self._fit(features, targets, keep_weights=True)
        return score

    def _fit(self, features, targets, *, keep_weights: bool):
        name = "LogME" if keep_weights else "logme"
        f = check_matrix(features, name=name)
        n, d = f.shape
        y, tmat, num_classes = None, None, 0
        if self.regression:
            tmat = _check_regression_targets(targets, n, name=name)       # [N, K] float64
            tnorm2 = np.einsum("ij,ij->j", tmat, tmat)                     # [K]
            self._one_dim = np.ndim(targets) == 1
        else:
            y, num_classes = check_labels(targets, n, name=name)
            self.classes_ = np.unique(np.asarray(targets))
            tnorm2 = np.bincount(y, minlength=num_classes).astype(np.float64)  # ‖1[y=c]‖²
        dev = _use_torch(self.device)
        if dev is None:
            spec = _spectrum_numpy(f, y, num_classes, tmat, tnorm2, name)
        else:
            spec = _spectrum_torch(f, y, num_classes, tmat, tnorm2, name, dev)
        evidence, alpha, beta, lam = _fixed_point(spec.sigma, spec.x2, spec.r0, n)
        self.evidences, self.alphas, self.betas = evidence, alpha, beta
        self.n_features_in_ = d
        if keep_weights:
            self.ms = _weights(spec, lam, f)
        return float(evidence.mean()), spec, f

    def predict(self, features) -> np.ndarray:
        """Predict with the posterior mean weights.

        Returns:
            classification: [N] predicted labels (original label values, argmax of F·mᵀ);
            regression: [N, K] (or [N] if fitted on a 1-D target) F·mᵀ.

        Raises:
            NotFittedError: `fit` was not called.
            ValueError: features not 2-D or with a different D than at fit time.
        """
        if not hasattr(self, "ms"):
            raise NotFittedError("LogME is not fitted; call fit(features, targets) first")
        f = check_matrix(features, name="LogME.predict")
        if f.shape[1] != self.n_features_in_:
            raise ValueError(f"LogME.predict: features must have {self.n_features_in_} columns "
                             f"(as in fit), got shape {f.shape}")
        out = np.asarray(f, dtype=np.float64) @ self.ms.T                  # [N, T]
        if self.regression:
            return out[:, 0] if self._one_dim else out
        return self.classes_[np.argmax(out, axis=1)]


def _check_regression_targets(targets, n: int, *, name: str) -> np.ndarray:
    t = np.asarray(targets)
    if t.dtype.kind not in "fiub":
        raise ValueError(f"{name}: regression targets must be numeric, got dtype {t.dtype}")
    t = t.astype(np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] != n or t.shape[1] == 0:
        raise ValueError(f"{name}: regression targets must have shape ({n},) or ({n}, K) with "
                         f"K ≥ 1, got {np.shape(targets)}")
    if not np.isfinite(t).all():
        raise ValueError(f"{name}: regression targets contain NaN or inf")
    return np.ascontiguousarray(t)


def logme(features, targets, regression: bool = False, *, device=None) -> float:
    r"""LogME (You et al., ICML 2021): mean over targets of the maximised log evidence / N.

    Higher is better; a per-sample log-likelihood scale (typically −1 … 1). Matches thuml/LogME's
    fixed-point `fit` with the N < D correction (metrics.md §1).

    Args:
        features: [N, D] frozen features, any real dtype (float32 is fine: products are
            accumulated in float64); never modified.
        targets: [N] class labels (any hashable values; remapped to 0..C−1), or with
            `regression=True` [N] / [N, K] real targets (not normalised: the score depends on
            their scale).
        regression: see `targets`.
        device: None (CUDA when available, else numpy), "numpy", or a torch device.

    Returns:
        A Python float.

    Raises:
        ValueError: see `LogME.fit`.
    """
    score, _, _ = LogME(regression, device=device)._fit(features, targets, keep_weights=False)
    return score
