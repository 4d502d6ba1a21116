"""N-LEEP: LEEP on the responsibilities of a Gaussian mixture fitted to the target features."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from tpred.scores._checks import check_features_labels


def _leep_terms(theta: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Expected empirical prediction p_i of LEEP (Nguyen et al., ICML 2020, steps 1-3).

    A "source class" z whose probability is 0 for every sample has P(z) = 0; its conditional is
    set to 0 instead of 0/0 (it multiplies theta_z = 0 anyway), so p_i stays exact.

    Shapes: theta [N, K] rows of probabilities; y [N] in 0..C-1. Returns p [N].
    """
    onehot = np.eye(num_classes)[y]                                          # [N, C]
    joint = onehot.T @ theta / len(y)                                        # [C, K] P(y, z)
    marginal = joint.sum(axis=0)                                             # [K]    P(z)
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)  # P(y | z)
    return np.einsum("nk,nk->n", theta, cond[y])                             # [N]


def nleep(features, labels, *, component_ratio: int = 5, random_state=None,
          log: bool = True) -> float:
    r"""N-LEEP (Li et al., "Ranking Neural Checkpoints", CVPR 2021), higher is better.

    `arXiv:2011.11200 <https://arxiv.org/abs/2011.11200>`_. The pipeline of SFDA's reference
    code (Shao et al., ECCV 2022), which every later paper reuses:

    1. ``PCA(n_components=0.8)`` (fewest leading components explaining more than 80 % of the
       variance; sklearn picks an exact solver, so this step is deterministic);
    2. ``GaussianMixture(n_components=component_ratio * C)`` with every sklearn default
       (full covariances, k-means initialisation, ``max_iter=100``, ``reg_covar=1e-6``);
    3. its responsibilities play LEEP's source-class probabilities:
       :math:`p_i = \sum_z P(y_i \mid z)\,\theta_z(x_i)`.

    ``log=True`` returns the paper's :math:`\frac1N\sum_i \log p_i \le 0`; ``log=False``
    returns :math:`\frac1N\sum_i p_i \in (0, 1]`, the number SFDA/PED/SA's code reports (their
    code drops the log).

    Randomness comes only from the mixture's k-means initialisation. ``random_state=s`` gives
    the same value as the (unseeded) reference called after ``np.random.seed(s)``: sklearn's
    ``check_random_state(s)`` is ``RandomState(s)``, the same stream as the global one after
    seeding. ``random_state=None`` draws from numpy's global RNG, as the reference does.

    Constant features (every row equal) carry no information: every sample then has the same
    responsibilities, :math:`p_i = \pi_{y_i}` (the class prior), and the score is
    :math:`\sum_c \pi_c \log \pi_c` (:math:`\sum_c \pi_c^2` with ``log=False``); this case
    is computed directly, without PCA or mixture.

    Args:
        features: [N, D] target features of the frozen model (any float dtype; used as float64).
        labels: [N] target labels, any hashable values (re-encoded to 0..C-1).
        component_ratio: mixture components per target class (the paper's 5; SFDA's driver
            uses 1 for Food and Pets). Must be a positive integer with
            ``component_ratio * C <= N``.
        random_state: int, ``np.random.RandomState`` or None; seeds the mixture.
        log: the paper's log form (default) or SFDA's form without the log.

    Shapes:
        features [N, D]; labels [N]. Returns a Python float.

    Raises:
        ValueError: invalid inputs (see ``check_features_labels``), a non-positive or
            non-integer ``component_ratio``, or more mixture components than samples.
    """
    f, y, num_classes = check_features_labels(features, labels, name="nleep")
    if (not isinstance(component_ratio, numbers.Integral) or isinstance(component_ratio, bool)
            or component_ratio < 1):
        raise ValueError(f"The 'component_ratio' parameter of nleep must be a positive int. "
                         f"Got {component_ratio!r} instead.")
    n_components = int(component_ratio) * num_classes
    if n_components > len(f):
        raise ValueError(f"nleep: component_ratio * C = {component_ratio} * {num_classes} = "
                         f"{n_components} mixture components exceed the {len(f)} samples")
    if np.ptp(f, axis=0).max() == 0:
        # Constant features: every sample gets the same responsibilities, whatever the mixture
        # does with them, so P(y | z) is the class prior (PCA would divide 0 by 0 here).
        theta = np.ones((len(f), 1))                                         # [N, 1]
    else:
        reduced = PCA(n_components=0.8).fit_transform(f)                     # [N, d']
        gmm = GaussianMixture(n_components=n_components, random_state=random_state)
        theta = gmm.fit(reduced).predict_proba(reduced)                      # [N, K]
    p = _leep_terms(theta, y, num_classes)                                   # [N]
    return float(np.mean(np.log(p)) if log else np.mean(p))
