"""Fine-tune one pre-trained student on a target: plain fine-tuning or B-Tuning with teachers.

Follows thuml/LogME `b_tuning.py`: LogME fits on the frozen pre-trained features of the training
images give each model its posterior mean weights m [C, D] and score L; teachers are weighted by
π = softmax(L / T); the student is trained in full with a new head (initialised N(0, 0.01²), 10×
the backbone's learning rate), SGD with Nesterov momentum 0.9 and weight decay 5e-4 (or AdamW),
the learning rate divided by 10 after 2/3 of a fixed number of steps (the reference: 6000 of
9050). `method="finetune"` is the same loop without the teachers' term (the baseline, same
budget).

One difference of form, not of value: the reference runs every teacher on every batch. Teachers
are frozen and in eval mode and the digits zoo's images are not augmented, so q(x) = Σ π_t f_t(x)
m_tᵀ is the same for an image at every step; it is computed once for all training images and
indexed per batch (the same numbers, without K forward passes per step).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from tpred.scores.logme import LogME
from tpred.tune.loss import BTuningLoss, b_tuning_loss, teacher_predictive, teacher_weights
from tpred.tune.student import (
    Batchable,
    Student,
    as_backbone,
    extract,
    is_loaded_model,
    num_items,
    take,
)

log = logging.getLogger(__name__)

Method = Literal["btuning", "finetune"]
Optimizer = Literal["sgd", "adamw"]
#: the learning rate is multiplied by this at the milestone (the reference's `gamma`)
LR_DECAY = 0.1


@dataclass(frozen=True)
class TuneConfig:
    """Settings of one fine-tuning run; the defaults here are the only defaults.

    Args:
        method: `btuning` (CE + λ·MSE toward the teachers) or `finetune` (CE only).
        steps: the fixed budget, in optimiser steps (batches).
        batch_size: images per step (the whole training set when it is smaller).
        lr: the backbone's learning rate; the new head gets `head_lr_mult` times it.
        head_lr_mult: 10 in the reference.
        optimizer: `sgd` (Nesterov momentum, the reference) or `adamw`.
        momentum: SGD momentum.
        weight_decay: on every parameter (5e-4 in the reference).
        decay_at: fraction of `steps` after which the learning rate is multiplied by 0.1.
        tradeoff: λ, the weight of the regression term (100 in the reference).
        temperature: T of π = softmax(L / T) (0.1 in the reference).
        eval_every: record a learning-curve point every this many steps (0: only at the end).
        seed: seeds the head's initial weights, the batch order and any dropout.
    """

    method: Method = "btuning"
    steps: int = 200
    batch_size: int = 32
    lr: float = 0.01
    head_lr_mult: float = 10.0
    optimizer: Optimizer = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_at: float = 2 / 3
    tradeoff: float = 100.0
    temperature: float = 0.1
    eval_every: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        for name, choices in (("method", Method), ("optimizer", Optimizer)):
            if getattr(self, name) not in get_args(choices):
                raise ValueError(f"TuneConfig.{name} must be one of {get_args(choices)}, got "
                                 f"{getattr(self, name)!r}")
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TuneConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "head_lr_mult", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TuneConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.tradeoff < 0 or self.weight_decay < 0 or self.eval_every < 0:
            raise ValueError(f"TuneConfig.tradeoff, weight_decay and eval_every must be >= 0, "
                             f"got {self.tradeoff}, {self.weight_decay}, {self.eval_every}")
        if not 0 < self.decay_at <= 1:
            raise ValueError(f"TuneConfig.decay_at must be in (0, 1], got {self.decay_at}")


@dataclass(frozen=True, eq=False)
class TuneData:
    """A target's labelled inputs, as the student reads them (any hashable label values; the
    test labels must occur in train).

    Shapes: x_train [N, ...] (a Tensor, or a mapping of tensors such as tokenised text);
    y_train [N]; x_test [M, ...]; y_test [M].
    """

    x_train: Batchable
    y_train: np.ndarray
    x_test: Batchable
    y_test: np.ndarray

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            n, y = num_items(getattr(self, f"x_{part}")), np.asarray(getattr(self, f"y_{part}"))
            if y.shape != (n,):
                raise ValueError(f"TuneData: y_{part} must have shape ({n},), got "
                                 f"{y.shape}")
            object.__setattr__(self, f"y_{part}", y)
        classes = np.unique(self.y_train)
        if len(classes) < 2:
            raise ValueError(f"TuneData: the training labels need at least 2 classes, got "
                             f"{classes.tolist()}")
        if unseen := sorted(set(np.unique(self.y_test).tolist()) - set(classes.tolist())):
            raise ValueError(f"TuneData: test label(s) {unseen} do not occur in the training "
                             f"labels {classes.tolist()}")

    @property
    def classes(self) -> np.ndarray:
        """Sorted label values [C]; position c is the head's output c and LogME's target c."""
        return np.unique(self.y_train)


@dataclass(frozen=True, eq=False)
class LogMEFit:
    """A model's LogME on the target's training features.

    Attributes:
        name: the model.
        score: L (mean log evidence per sample over the C one-vs-rest targets).
        m: posterior mean weights [C, D] float32 (classes in `TuneData.classes` order).
        features: the frozen features of the training images [N, D] float32.
    """

    name: str
    score: float
    m: torch.Tensor
    features: torch.Tensor


@dataclass(frozen=True, eq=False)
class Teachers:
    """The teachers that could be fitted, their π, and the mixture q for every training image.

    Attributes:
        names: teachers kept, in input order. skipped: `(name, reason)` of the others.
        scores: their LogME [K]. pi: softmax(scores / T) [K].
        predictive: q = Σ_t π_t f_t m_tᵀ [N, C] over the training images.
    """

    names: tuple[str, ...]
    scores: np.ndarray
    pi: np.ndarray
    predictive: torch.Tensor
    skipped: tuple[tuple[str, str], ...] = ()


@dataclass(eq=False)
class TuneResult:
    """What `tune` returns.

    Attributes:
        student: the tuned network (`Student`: backbone + new head).
        classes: label value of each head output [C].
        test_accuracy: accuracy on the test images after the last step.
        curve: one dict per recorded point: step, epoch (images seen / N), loss, cross_entropy,
            regression (the MSE before λ; 0 for fine-tuning), train_accuracy (of the batches since
            the previous point), test_accuracy.
        seconds: wall time of the LogME fits and the training loop.
        student_logme: the student's LogME (B-Tuning only; else None).
        teachers: the `Teachers` used (B-Tuning only; else None).
    """

    student: Student
    classes: np.ndarray
    test_accuracy: float
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    student_logme: float | None = None
    teachers: Teachers | None = None


def fit_logme(model: Any, x: Batchable, labels: np.ndarray, *,
              name: str = "model") -> LogMEFit:
    """LogME of a pre-trained model's frozen penultimate features of `x`.

    Args:
        model: an `nn.Module` with a detectable head, or a `tpred.extract.LoadedModel`.
        x: its inputs of the training images.

    Shapes: x [N, ...]; labels [N] -> m [C, D] (classes in sorted label order).

    Raises:
        ValueError: no detectable head, features of the wrong shape or not finite, or bad
            labels (see `tpred.scores.logme.LogME.fit`).
    """
    backbone, dim = as_backbone(model, take(x, slice(0, 2)), name=name)
    features = extract(backbone, x, dim, name=name)                        # [N, D]
    logme = LogME()
    score = logme.fit(features.numpy(), labels)
    return LogMEFit(name, score, torch.as_tensor(logme.ms, dtype=torch.float32), features)


#: a teacher: its name and the network (an nn.Module or a tpred.extract.LoadedModel), or a
#: function that loads it and may also return its own inputs of the training images, as
#: `(network, inputs)` (so that a failure to load or preprocess is a skipped teacher too)
TeacherSource = tuple[str, Any]


def _teacher(source: Any, x: Batchable) -> tuple[Any, Batchable]:
    """(network, its inputs): `source` itself, or what calling it returns."""
    if not (isinstance(source, nn.Module) or is_loaded_model(source)):
        source = source()
    if isinstance(source, tuple):
        return source
    return source, x


def prepare_teachers(teachers: Sequence[TeacherSource], x: Batchable, labels: np.ndarray,
                     temperature: float) -> Teachers:
    """LogME-fit every teacher on the training images; skip those that fail, with a warning.

    A teacher that cannot be loaded, has no detectable head, or whose features cannot be
    extracted or scored is skipped and π is the softmax over the others (the same as
    renormalising the full π over the teachers kept).

    Args:
        teachers: `(name, source)` pairs (`TeacherSource`).
        x: the inputs of a teacher that brings none of its own (the student's).
        labels: the training labels [N].
        temperature: T of π.

    Shapes: x [N, ...]; labels [N] -> `Teachers.predictive` [N, C].

    Raises:
        ValueError: no teachers given, or none could be fitted (every reason is listed).
    """
    if not len(teachers):
        raise ValueError("prepare_teachers: B-Tuning needs at least one teacher")
    fits: list[LogMEFit] = []
    skipped: list[tuple[str, str]] = []
    for name, source in teachers:
        try:
            model, inputs = _teacher(source, x)
            fits.append(fit_logme(model, inputs, labels, name=name))
        except (ValueError, RuntimeError, OSError) as err:  # this teacher only: go on
            reason = f"{type(err).__name__}: {' '.join(str(err).split())}"
            warnings.warn(f"teacher {name!r} skipped ({reason}); π is renormalised over the "
                          f"other teachers", UserWarning, stacklevel=2)
            skipped.append((name, reason))
    if not fits:
        raise ValueError("no teacher could be used: " + "; ".join(f"{n}: {r}"
                                                                   for n, r in skipped))
    scores = np.array([f.score for f in fits])
    pi = teacher_weights(scores, temperature)
    q = teacher_predictive([f.features for f in fits], [f.m for f in fits],
                           torch.as_tensor(pi, dtype=torch.float32))       # [N, C]
    return Teachers(tuple(f.name for f in fits), scores, pi, q, tuple(skipped))


def _optimizer(student: Student, cfg: TuneConfig) -> torch.optim.Optimizer:
    groups = [{"params": [p for p in student.backbone.parameters() if p.requires_grad]},
              {"params": list(student.head.parameters()), "lr": cfg.lr * cfg.head_lr_mult}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _batches(n: int, batch_size: int, steps: int, generator: torch.Generator):
    """`steps` index batches: shuffled passes over 0..n−1, each cut into batches."""
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            if done == steps:
                return
            yield order[start:start + batch_size]
            done += 1


def tune(model: Any, data: TuneData, cfg: TuneConfig | None = None, *,
         teachers: Sequence[TeacherSource] | Teachers = (), name: str = "student",
         progress: bool = False) -> TuneResult:
    """Fine-tune `model` (a copy; the argument is not modified) on `data`.

    Args:
        model: the pre-trained student, with its source head: an `nn.Module` (`split_head`
            removes the head) or a `tpred.extract.LoadedModel` (its features are the head's
            input); `data`'s inputs are its inputs.
        data: the target's images and labels.
        cfg: the settings (`cfg.method` picks B-Tuning or plain fine-tuning; default
            `TuneConfig()`).
        teachers: B-Tuning's teachers (`(name, network or loader)` pairs, or a `Teachers`
            already prepared for these training images); ignored by `finetune`.
        name: the student's name, for messages.
        progress: show a tqdm bar over the steps.

    Returns:
        The tuned student, its learning curve and its test accuracy.

    Raises:
        ValueError: the student has no detectable head; B-Tuning without any usable teacher;
            the student's own LogME cannot be fitted.
    """
    cfg = TuneConfig() if cfg is None else cfg
    start = time.perf_counter()
    classes = data.classes
    y = torch.as_tensor(np.searchsorted(classes, data.y_train), dtype=torch.long)   # [N]
    y_test = np.searchsorted(classes, data.y_test)                                    # [M]
    backbone, dim = as_backbone(model, take(data.x_train, slice(0, 2)), name=name)
    prepared, student_fit = None, None
    if cfg.method == "btuning":
        prepared = (teachers if isinstance(teachers, Teachers)
                    else prepare_teachers(teachers, data.x_train, data.y_train, cfg.temperature))
        if prepared.predictive.shape != (len(y), len(classes)):
            raise ValueError(f"tune: the teachers' predictive has shape "
                             f"{tuple(prepared.predictive.shape)}, expected "
                             f"({len(y)}, {len(classes)}) for these training images")
        student_fit = fit_logme(model, data.x_train, data.y_train, name=name)
    with torch.random.fork_rng(devices=[]):           # dropout draws: seeded, and local
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        student = Student(backbone, dim, len(classes), gen)
        curve = _train(student, data, y, y_test, cfg, gen, student_fit, prepared, progress)
    accuracy = float(np.mean(student.predict(data.x_test) == y_test))
    return TuneResult(student, classes, accuracy, curve, time.perf_counter() - start,
                      None if student_fit is None else student_fit.score, prepared)


def _train(student: Student, data: TuneData, y: torch.Tensor, y_test: np.ndarray,
           cfg: TuneConfig, gen: torch.Generator, student_fit: LogMEFit | None,
           teachers: Teachers | None, progress: bool) -> list[dict]:
    """The training loop; returns the learning curve."""
    opt = _optimizer(student, cfg)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[max(1, round(cfg.decay_at * cfg.steps))], gamma=LR_DECAY)
    objective = None if teachers is None else BTuningObjective(
        student_fit.m, teachers.predictive, cfg.tradeoff)
    n = len(y)
    curve: list[dict] = []
    sums = np.zeros(5)          # loss, ce, regression, correct, images since the last point
    student.train()
    batches = _batches(n, cfg.batch_size, cfg.steps, gen)
    for step, idx in enumerate(tqdm(batches, total=cfg.steps, desc="tune", disable=not progress),
                               start=1):
        features, logits = student(take(data.x_train, idx))
        if objective is None:
            parts = b_tuning_loss(logits, y[idx], features, None, None, 0.0)
        else:
            parts = objective(features, logits, y[idx], idx)
        opt.zero_grad()
        parts.total.backward()
        opt.step()
        sched.step()
        b = len(idx)
        sums += [b * parts.total.item(), b * parts.cross_entropy.item(),
                 b * parts.regression.item(), (logits.argmax(1) == y[idx]).sum().item(), b]
        if step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0):
            curve.append(_point(student, data, y_test, step, cfg, n, sums))
            sums[:] = 0
            student.train()
    return curve


def _point(student: Student, data: TuneData, y_test: np.ndarray, step: int, cfg: TuneConfig,
           n: int, sums: np.ndarray) -> dict:
    loss, ce, reg, correct, seen = sums
    test = float(np.mean(student.predict(data.x_test) == y_test))
    per_pass = -(-n // cfg.batch_size)                      # steps per pass over the images
    return {"step": step, "epoch": round(step / per_pass, 4),
            "loss": float(loss / seen), "cross_entropy": float(ce / seen),
            "regression": float(reg / seen), "train_accuracy": float(correct / seen),
            "test_accuracy": test}


class BTuningObjective:
    """The B-Tuning loss of a batch of training images, given by their positions.

    Args:
        student_m: the pre-trained student's LogME weights m_s [C, D_s].
        predictive: the teachers' mixture q for every training image [N, C].
        tradeoff: λ.
    """

    def __init__(self, student_m: torch.Tensor, predictive: torch.Tensor,
                 tradeoff: float) -> None:
        self.student_m = student_m
        self.predictive = predictive
        self.tradeoff = tradeoff

    def __call__(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                 idx: torch.Tensor) -> BTuningLoss:
        """Shapes: features [B, D_s]; logits [B, C]; labels [B]; idx [B] positions in 0..N−1."""
        return b_tuning_loss(logits, labels, features, self.student_m, self.predictive[idx],
                             self.tradeoff)
