"""The scale the gnn learns on: accuracy itself, or the logit of a squeezed accuracy.

With `GNNConfig.logit_squeeze` = ε > 0, every accuracy a the gnn reads (its baseline, its
neighbour residuals, its record edges, its training targets) is z = s · logit(ε + (1 − 2ε) a),
s = `GNNConfig.logit_scale`, and its outputs go back through the inverse. On the logit scale
the additive baseline is a Rasch-like model (model ability + dataset difficulty), and a step
between 0.98 and 0.99 weighs more than one between 0.80 and 0.81, so the network orders the
models of an easy dataset instead of piling them on the clip to 1. The squeeze keeps a = 0 and
a = 1 finite and in order (a clip to [ε, 1 − ε] would tie everything beyond it). The scale s
keeps z of the size of the accuracy-unit targets the network's hyper-parameters (learning
rate, weight decay, initial weights, edge inputs) were chosen for: with ε = 0.05 and s = 0.35,
dz/da = s (1 − 2ε) / (q (1 − q)), q = ε + (1 − 2ε) a, is 1.26 at a = 0.5 and 2.1 at a = 0.85.
ε = 0 is the identity (accuracy units). Both were chosen on inner splits (bench/README.md,
"Learning on the logit scale").
"""

from __future__ import annotations

import numpy as np
import scipy.special


def to_target(acc: np.ndarray, squeeze: float, scale: float = 1.0) -> np.ndarray:
    """`scale` · logit(ε + (1 − 2ε) · acc) for ε = `squeeze` > 0; `acc` itself for 0.

    Accuracies outside [0, 1] are clipped into it first (the records are validated to lie in
    it; the clip guards the logit against round-off).

    Shapes: acc [N] -> [N].
    """
    if not squeeze:
        return acc
    return scale * scipy.special.logit(squeeze + (1 - 2 * squeeze) * np.clip(acc, 0.0, 1.0))


def from_target(z: np.ndarray, squeeze: float, scale: float = 1.0) -> np.ndarray:
    """The accuracy of `to_target`'s scale, clipped to [0, 1]: (sigmoid(z / s) − ε) / (1 − 2ε)
    for ε = `squeeze` > 0, s = `scale` (exact inverse of `to_target` on [0, 1]); z clipped to
    [0, 1] for ε = 0.

    A z beyond logit(1 − ε) (an accuracy above 1) is clipped to 1, as the accuracy-scale
    output is.

    Shapes: z [...] -> [...].
    """
    if not squeeze:
        return np.clip(z, 0.0, 1.0)
    return np.clip((scipy.special.expit(z / scale) - squeeze) / (1 - 2 * squeeze), 0.0, 1.0)
