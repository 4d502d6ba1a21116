"""`tpred.parallel` and `tpred.score` on real engines: a Dask `LocalCluster` and a local Ray.

The clusters are real (separate worker processes, a scheduler, pickling); the scores computed on
them must equal the single-process ones to the last bit, also when a worker is killed mid-run.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

import tpred.parallel as parallel
from tpred.parallel import Outcome, check_options, run_tasks
from tpred.score import main as score_main
from tpred.scores.table import errors_path, score_directory

METRICS = ["logme", "hscore", "transrate"]
N, D, C = 400, 64, 4  # about 0.1 s per pair: slow enough to kill a worker mid-run


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory):
    """3 models x 8 datasets of feature files whose class separation grows with the model."""
    root = tmp_path_factory.mktemp("features")
    for i in range(3):
        (root / f"m{i}").mkdir()
        for j in range(8):
            rng = np.random.default_rng(100 * i + j)
            y = np.arange(N) % C
            features = rng.normal(size=(N, D)) + (0.3 + 0.4 * i) * np.eye(C, D)[y]  # [N, D]
            np.savez(root / f"m{i}" / f"d{j}.npz", features=features.astype(np.float32),
                     labels=y)
    return root


@pytest.fixture(scope="module")
def serial(feature_dir, tmp_path_factory):
    """The single-process table every engine must reproduce exactly."""
    out = tmp_path_factory.mktemp("serial") / "scores.csv"
    table = score_directory(feature_dir, out, METRICS, jobs=1, progress=False)
    assert len(table) == 3 * 8 * len(METRICS)
    return table


def data_rows(path) -> int:
    """Rows appended to a scores CSV so far (0 while it has no data row)."""
    if not path.exists():
        return 0
    with open(path) as fh:
        return max(sum(1 for _ in fh) - 1, 0)


# ------------------------------------------------------------------------------ dask
@pytest.mark.slow
def test_dask_cluster_loses_nothing_when_a_worker_is_killed_mid_run(feature_dir, serial,
                                                                    tmp_path):
    distributed = pytest.importorskip("distributed", reason="tpred[dask] is not installed")
    out = tmp_path / "scores.csv"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        pids = client.run(os.getpid)  # {worker address: pid}
        killed: dict[str, object] = {}

        def kill_a_busy_worker() -> None:
            """SIGKILL a worker that holds a task, once the first pair has been written."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "pid" not in killed:
                busy = {w: keys for w, keys in client.processing().items() if keys}
                if data_rows(out) and busy:
                    worker, keys = next(iter(busy.items()))
                    killed.update(pid=pids[worker], keys=keys, rows=data_rows(out))
                    os.kill(pids[worker], signal.SIGKILL)
                time.sleep(0.005)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        try:
            table = score_directory(feature_dir, out, METRICS, backend="dask",
                                    address=cluster.scheduler_address, progress=False)
        finally:
            killer.join()
        assert "pid" in killed, "the run finished before a worker could be killed"
        assert killed["keys"] and killed["rows"] < len(serial)  # it held work, mid-run
        with pytest.raises(ProcessLookupError):
            os.kill(killed["pid"], 0)  # that process is gone; its tasks ran elsewhere
    pd.testing.assert_frame_equal(table, serial)
    assert table.attrs["summary"].num_errors == 0
    assert errors_path(out).read_text().strip() == "model,dataset,metric,kind,reason"


@pytest.mark.slow
def test_dask_local_cluster_reports_a_failing_task_and_completes_the_rest():
    pytest.importorskip("distributed", reason="tpred[dask] is not installed")
    # no address, no client: run_tasks starts (and closes) a LocalCluster of `jobs` workers
    outcomes = list(run_tasks(math.sqrt, [4.0, -1.0, 9.0], backend="dask", jobs=1, retries=1))
    by_task = {o.task: o for o in outcomes}
    assert len(outcomes) == 3
    assert (by_task[4.0].result, by_task[9.0].result) == (2.0, 3.0)
    assert by_task[-1.0] == Outcome(-1.0, None, "ValueError: math domain error")


def test_an_unreachable_dask_scheduler_is_a_clear_error(monkeypatch):
    pytest.importorskip("distributed", reason="tpred[dask] is not installed")
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 0.5)
    with pytest.raises(ValueError, match=r"backend 'dask': cannot connect to the scheduler "
                                         r"'tcp://127.0.0.1:1'"):
        list(run_tasks(math.sqrt, [1.0], backend="dask", address="tcp://127.0.0.1:1"))


# ------------------------------------------------------------------------------ ray
@pytest.mark.slow
def test_ray_gives_the_single_process_scores_and_reports_failures(feature_dir, serial,
                                                                  tmp_path, capsys):
    ray = pytest.importorskip("ray", reason="tpred[ray] is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "scores.csv"
        assert score_main(["--features", str(feature_dir), "--out", str(out), "--metrics",
                           ",".join(METRICS), "--backend", "ray", "--no-progress"]) == 0
        assert "72 requested, 0 already scored, 72 computed; 0 error(s)" in capsys.readouterr().err
        table = pd.read_csv(out, dtype={"model": str, "dataset": str, "metric": str})
        pd.testing.assert_frame_equal(table, serial)
        outcomes = {o.task: o for o in run_tasks(math.sqrt, [4.0, -1.0], backend="ray",
                                                 retries=1)}
        assert outcomes[4.0] == Outcome(4.0, 2.0)
        assert outcomes[-1.0] == Outcome(-1.0, None, "ValueError: math domain error")
        assert ray.is_initialized()  # a runtime it found is left running
    finally:
        ray.shutdown()


def test_an_unreachable_ray_cluster_is_a_clear_error(monkeypatch):
    ray = pytest.importorskip("ray", reason="tpred[ray] is not installed")

    def refuse(address=None, **kwargs):  # ray.init itself keeps retrying for minutes
        raise ConnectionError(f"could not reach {address}")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(ValueError, match=r"backend 'ray': cannot connect to the cluster "
                                         r"'10.0.0.1:6379' \(ConnectionError: could not reach"):
        list(run_tasks(math.sqrt, [1.0], backend="ray", address="10.0.0.1:6379"))


# ------------------------------------------------------------------------------ loky, options
def test_loky_streams_every_outcome_and_reports_a_failing_task():
    outcomes = list(run_tasks(math.sqrt, [4.0, -1.0, 9.0], jobs=1))
    assert outcomes == [Outcome(4.0, 2.0), Outcome(-1.0, None, "ValueError: math domain error"),
                        Outcome(9.0, 3.0)]  # jobs=1: in this process, in order
    assert [o.ok for o in outcomes] == [True, False, True]
    assert list(run_tasks(math.sqrt, [])) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backend": "spark"}, r"Could not resolve backend 'spark' among choices \{loky, dask, ray\}"),
    ({"jobs": 0}, r"jobs must be a positive int or -1 \(all cores\), got 0"),
    ({"retries": -1}, "retries must be an int >= 0, got -1"),
    ({"address": "tcp://h:8786"}, r"a cluster address \('tcp://h:8786'\) needs backend 'dask' "
                                  "or 'ray', not 'loky'"),
])
def test_bad_options_are_rejected_before_any_work(kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_options(**kwargs)


@pytest.mark.parametrize(("argv", "message"), [
    (["--scheduler", "tcp://h:8786"], "--scheduler is the Dask scheduler; it needs --backend dask"),
    (["--backend", "dask", "--address", "auto"], "--address is the Ray cluster; it needs "
                                                 "--backend ray"),
])
def test_cluster_addresses_must_match_the_backend(argv, message):
    parser = argparse.ArgumentParser()
    parallel.add_arguments(parser)
    with pytest.raises(ValueError, match=message):
        parallel.options(parser.parse_args(argv))


def test_cluster_options_map_to_run_tasks_arguments():
    parser = argparse.ArgumentParser()
    parallel.add_arguments(parser)
    assert parallel.options(parser.parse_args(
        ["--backend", "dask", "--scheduler", "tcp://h:8786", "--jobs", "3"])) == {
        "backend": "dask", "jobs": 3, "retries": 2, "address": "tcp://h:8786"}
    assert parallel.options(parser.parse_args(["--backend", "ray", "--address", "auto"]))[
        "address"] == "auto"
