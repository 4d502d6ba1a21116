"""Rank, then tune: fine-tune the predicted best model, with B-Tuning from the predicted top-K.

    from tpred.tune import TuneConfig, TuneData, tune
    result = tune(student_net, TuneData(x_train, y_train, x_test, y_test),
                  TuneConfig(method="btuning"), teachers=[("a", net_a), ("b", net_b)])
    result.test_accuracy, result.curve, result.teachers.pi

`python -m tpred.tune` takes the ranking from a trained run (see `tpred/tune/__main__.py`).
"""

from tpred.tune.fit import (
    BTuningObjective,
    LogMEFit,
    Teachers,
    TuneConfig,
    TuneData,
    TuneResult,
    fit_logme,
    prepare_teachers,
    tune,
)
from tpred.tune.loss import BTuningLoss, b_tuning_loss, teacher_predictive, teacher_weights
from tpred.tune.student import Student, split_head

__all__ = ["BTuningLoss", "BTuningObjective", "LogMEFit", "Student", "Teachers", "TuneConfig",
           "TuneData", "TuneResult", "b_tuning_loss", "fit_logme", "prepare_teachers",
           "split_head", "teacher_predictive", "teacher_weights", "tune"]
