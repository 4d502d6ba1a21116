"""tpred.tune.fit: the tuning loop, teachers (LogME fits, π, skipping), heads and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tpred.scores.logme import LogME
from tpred.tune import (
    BTuningObjective,
    TuneConfig,
    TuneData,
    fit_logme,
    prepare_teachers,
    split_head,
    teacher_weights,
    tune,
)
from tpred.tune.student import extract
from tpred.zoo.networks import make_network


def _net(family: str, size, seed: int, num_classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return make_network(family, size, num_classes).eval()


@pytest.fixture(scope="module")
def data() -> TuneData:
    """3 classes (labels 3, 5, 7) of 8×8 images with a class-dependent bright square."""
    rng = np.random.default_rng(0)

    def part(n):
        y = np.repeat([3, 5, 7], n)
        x = rng.uniform(0, 0.3, size=(len(y), 1, 8, 8)).astype(np.float32)
        for i, c in enumerate(y):
            r = (c - 3) // 2 * 3                         # rows 0-1, 3-4, 6-7
            x[i, 0, r:r + 2, 2:6] += 0.7
        return torch.from_numpy(x), y

    (xa, ya), (xb, yb) = part(6), part(20)
    return TuneData(xa, ya, xb, yb)


@pytest.fixture(scope="module")
def teachers():
    return [("cnn", _net("cnn", (2, 4, 8), 1)), ("mlp", _net("mlp", (16,), 2)),
            ("resnet", _net("resnet", (4, 1), 3))]


FAST = TuneConfig(steps=4, batch_size=8, eval_every=2)


# ------------------------------------------------------------------- λ = 0 is fine-tuning
@pytest.mark.parametrize("steps", [1, 3])
def test_btuning_with_lambda_zero_is_exactly_plain_finetuning(data, teachers, steps):
    student = _net("resnet", (4, 1), 11)                 # BatchNorm: train-mode state too
    cfg = TuneConfig(steps=steps, batch_size=8, eval_every=0, seed=5)
    plain = tune(student, data, TuneConfig(**{**cfg.__dict__, "method": "finetune"}))
    zero = tune(student, data, TuneConfig(**{**cfg.__dict__, "tradeoff": 0.0}),
                teachers=teachers)
    full = tune(student, data, cfg, teachers=teachers)
    a, b, c = (r.student.state_dict() for r in (plain, zero, full))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the check can fail: with λ = 100 the same step moves the backbone elsewhere
    assert not all(torch.equal(a[k], c[k]) for k in a if k.startswith("backbone."))
    assert zero.teachers is not None and plain.teachers is None


def test_tune_is_deterministic_for_a_seed_and_leaves_the_model_unchanged(data, teachers):
    student = _net("cnn", (2, 4, 8), 12)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    one = tune(student, data, FAST, teachers=teachers)
    two = tune(student, data, FAST, teachers=teachers)
    other = tune(student, data, TuneConfig(**{**FAST.__dict__, "seed": 1}), teachers=teachers)
    s1, s2, s3 = (r.student.state_dict() for r in (one, two, other))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())
    assert one.curve == two.curve


def test_tune_learns_a_separable_task_and_records_its_curve(data):
    result = tune(_net("mlp", (32,), 13), data,
                  TuneConfig(method="finetune", steps=40, batch_size=8, eval_every=10,
                             lr=0.01))
    assert result.test_accuracy >= 0.9                   # chance is 1/3
    assert [p["step"] for p in result.curve] == [10, 20, 30, 40]
    assert result.curve[-1]["test_accuracy"] == result.test_accuracy
    assert result.curve[0]["epoch"] == pytest.approx(10 / 3, abs=1e-4)  # 18 images, 3 batches
    assert result.curve[-1]["cross_entropy"] < result.curve[0]["cross_entropy"]
    assert list(result.classes) == [3, 5, 7]
    assert result.seconds > 0


def test_adamw_runs_and_learns(data):
    result = tune(_net("mlp", (32,), 13), data,
                  TuneConfig(method="finetune", optimizer="adamw", lr=1e-3, steps=40,
                             batch_size=8, eval_every=0))
    assert result.test_accuracy >= 0.9


# -------------------------------------------------------------- teachers, π and LogME fits
def test_the_objective_of_tune_is_ce_plus_lambda_mse_to_the_logme_mixture(data, teachers):
    """B-Tuning's objective on a batch, from tpred's LogME fits, equals a direct computation
    with LogME fitted independently on the same frozen features."""
    prepared = prepare_teachers(teachers, data.x_train, data.y_train, temperature=0.1)
    student_net = _net("cnn", (2, 4, 8), 14)
    s_fit = fit_logme(student_net, data.x_train, data.y_train, name="s")
    objective = BTuningObjective(s_fit.m, prepared.predictive, 100.0)
    idx = torch.tensor([0, 4, 9, 17])
    backbone, _ = split_head(student_net)
    features = backbone(data.x_train[idx])
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.as_tensor(np.searchsorted([3, 5, 7], data.y_train[idx]))
    parts = objective(features, logits, labels, idx)

    def direct_fit(net):
        bb, _ = split_head(net)
        with torch.no_grad():
            f = bb(data.x_train).double().numpy()
        lm = LogME()
        return lm.fit(f, data.y_train), lm.ms, f

    fits = [direct_fit(net) for _, net in teachers]
    pi = teacher_weights([s for s, _, _ in fits], 0.1)
    q = sum(p * f[idx.numpy()] @ m.T for p, (_, m, f) in zip(pi, fits, strict=True))  # [4, C]
    _, m_s, _ = direct_fit(student_net)
    r = features.detach().double().numpy() @ m_s.T - q
    ce = nn.functional.cross_entropy(logits, labels).item()
    assert prepared.names == ("cnn", "mlp", "resnet")
    np.testing.assert_allclose(prepared.pi, pi, rtol=1e-6)
    np.testing.assert_allclose(prepared.scores, [s for s, _, _ in fits], rtol=1e-6)
    assert parts.regression.item() == pytest.approx(np.mean(r ** 2), rel=1e-5)
    assert parts.total.item() == pytest.approx(ce + 100.0 * np.mean(r ** 2), rel=1e-5)


def test_a_teacher_that_cannot_be_used_is_skipped_and_pi_renormalised(data, teachers):
    def broken_loader():
        raise ValueError("weights file is corrupt")

    class NaNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(torch.full((len(x), 4), float("nan")))

    with pytest.warns(UserWarning) as caught:
        prepared = prepare_teachers([teachers[0], ("broken", broken_loader),
                                     ("nan", NaNNet()), teachers[1]],
                                    data.x_train, data.y_train, temperature=0.1)
    messages = [str(w.message) for w in caught]
    assert any("teacher 'broken' skipped (ValueError: weights file is corrupt)" in m
               for m in messages)
    assert any("teacher 'nan' skipped" in m and "NaN or inf" in m for m in messages)
    assert prepared.names == ("cnn", "mlp")
    assert [name for name, _ in prepared.skipped] == ["broken", "nan"]
    both = prepare_teachers(teachers[:2], data.x_train, data.y_train, temperature=0.1)
    np.testing.assert_allclose(prepared.pi, both.pi)
    assert prepared.pi.sum() == pytest.approx(1.0)
    torch.testing.assert_close(prepared.predictive, both.predictive)


def test_no_usable_teacher_is_an_error(data):
    with pytest.warns(UserWarning, match="teacher 'a' skipped"), \
            pytest.raises(ValueError, match="no teacher could be used: a: .*no detectable"):
        prepare_teachers([("a", nn.Sequential(nn.Flatten()))], data.x_train, data.y_train, 0.1)
    with pytest.raises(ValueError, match="needs at least one teacher"):
        tune(_net("mlp", (8,), 0), data, FAST, teachers=[])


def test_prepared_teachers_must_match_the_training_images(data, teachers):
    prepared = prepare_teachers(teachers, data.x_train[:9], data.y_train[:9], 0.1)
    with pytest.raises(ValueError, match=r"predictive has shape \(9, 2\), expected \(18, 3\)"):
        tune(_net("mlp", (8,), 0), data, FAST, teachers=prepared)


# ----------------------------------------------------------------------------------- heads
class Wrapped(nn.Module):
    """A torchvision-like layout: `.features` then `.classifier` (a Sequential)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
        self.classifier = nn.Sequential(nn.ReLU(), nn.Linear(5, 3))

    def forward(self, x):
        return self.classifier(self.features(x))


class Unflat(nn.Module):
    """A head whose input is 3-D: its 'features' are not [B, D]."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x.flatten(1)[:, :3].unsqueeze(1))


def test_split_head_finds_the_head_of_common_layouts():
    x = torch.zeros(2, 1, 8, 8)
    net = _net("cnn", (2, 4, 8), 0)
    backbone, dim = split_head(net)
    assert dim == 8 and backbone(x).shape == (2, 8)
    assert isinstance(net.head, nn.Linear)                      # the original keeps its head
    torch.testing.assert_close(backbone(x), net.features(x))
    wrapped = Wrapped()
    backbone, dim = split_head(wrapped)
    assert dim == 5 and isinstance(backbone.classifier[-1], nn.Identity)
    torch.testing.assert_close(backbone(x), torch.relu(wrapped.features(x)))


def test_a_student_without_a_detectable_head_is_an_error(data):
    headless = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.ReLU())
    with pytest.raises(ValueError, match="my-net: no detectable classifier head"):
        split_head(headless, name="my-net")
    with pytest.raises(ValueError, match="student: no detectable classifier head"):
        tune(headless, data, TuneConfig(method="finetune", steps=1))


def test_extract_checks_the_feature_shape():
    backbone, dim = split_head(Unflat())
    with pytest.raises(ValueError, match=r"odd: features must have shape \(4, 3\), got "
                                         r"\(4, 1, 3\)"):
        extract(backbone, torch.zeros(4, 1, 8, 8), dim, name="odd")


# ---------------------------------------------------------------------------- bad settings
@pytest.mark.parametrize("kwargs,match", [
    ({"method": "distill"}, "method must be one of"), ({"optimizer": "adam"}, "optimizer"),
    ({"steps": 0}, "steps must be >= 1"), ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"lr": 0}, "lr must be > 0"), ({"temperature": -1}, "temperature must be > 0"),
    ({"tradeoff": -1}, "tradeoff, weight_decay and eval_every must be >= 0"),
    ({"decay_at": 0}, "decay_at must be in")])
def test_tune_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TuneConfig(**kwargs)


def test_tune_data_rejects_bad_labels():
    x = torch.zeros(4, 1, 8, 8)
    with pytest.raises(ValueError, match="y_train must have shape"):
        TuneData(x, np.zeros(3), x, np.zeros(4))
    with pytest.raises(ValueError, match="at least 2 classes"):
        TuneData(x, np.zeros(4), x, np.zeros(4))
    with pytest.raises(ValueError, match=r"test label\(s\) \[9\] do not occur"):
        TuneData(x, np.array([0, 1, 0, 1]), x, np.array([0, 1, 9, 1]))
