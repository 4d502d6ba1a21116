"""Run one task per (model, dataset) pair on local processes, a Dask cluster or a Ray cluster.

The expensive front-end work (scoring a pair's features, extracting a model's features on a
dataset) is embarrassingly parallel. This module runs it on a real engine and streams the
results back as they finish, so the caller can append each to its output file at once: a worker
that dies loses only the task it was running (the engine reschedules it), and an interrupted run
keeps everything already written, so a rerun that skips finished pairs resumes it.

Usage (the whole API)::

    from functools import partial
    from tpred.parallel import run_tasks

    work = partial(score_one_pair, random_state=0)   # a module-level function, picklable
    for outcome in run_tasks(work, tasks, backend="dask", address="tcp://host:8786"):
        if outcome.ok:
            append(outcome.result)            # write it now: nothing is lost if we stop here
        else:
            record_failure(outcome.task, outcome.error)   # "ExcType: message", after retries

`run_tasks(fn, tasks, *, backend, jobs, address, retries, progress, desc, max_in_flight)`:

* `fn(task) -> result` runs on a worker. It must be importable there (a module-level function of
  an installed package, or a `functools.partial` of one); `task` and `result` must pickle. Keep
  a task small (a file path rather than the arrays) when the workers are other machines, and put
  the files on storage every worker can read. A task should catch the errors it expects and
  return them as data (as `tpred.scores.table` does); anything it raises is retried and then
  reported as a failed `Outcome`, never dropped.
* `backend`:
    - `"loky"`: local processes (joblib's loky; `jobs=1` runs in this process, in order). A task
      that raises is reported, not retried (on one machine a failure repeats); a worker process
      that dies stops the run, with the finished results already yielded.
    - `"dask"`: `address` (`tcp://host:8786`, or a scheduler JSON file as written by
      `dask scheduler --scheduler-file`), else the client already active in this process, else
      the scheduler of the Dask config (`scheduler-address`, e.g. `DASK_SCHEDULER_ADDRESS`),
      else a `distributed.LocalCluster` of `jobs` single-threaded worker processes. Results
      stream back with `distributed.as_completed`. A task whose worker dies is rescheduled by the
      scheduler (up to `distributed.scheduler.allowed-failures` times, default 3); a task that
      raises is retried `retries` times (`Client.submit(retries=...)`).
    - `"ray"`: `address` (`ray://host:10001`, `host:6379` or `auto`), else the Ray runtime
      already initialised in this process, else `ray.init()` (which joins `RAY_ADDRESS` when set,
      else starts a local Ray with `jobs` CPUs). Results stream back with `ray.wait`. Lost
      workers and exceptions are retried `retries` times (`max_retries`, `retry_exceptions`).
  Connections and clusters this function opened are closed when the iteration ends; ones it
  found open are left open.
* `jobs`: local workers (`-1`: all cores). On an existing cluster every worker is used.
* `max_in_flight`: tasks submitted but not yet finished (default: 4 per worker thread, at least
  8), so a list of 10^6 tasks never sits in the scheduler at once.
* Yields `Outcome(task, result, error)` in completion order (`error` is None on success); sort
  afterwards when the order matters.

Command lines share the options through `add_arguments(parser)` and `options(args)`:
`--backend loky|dask|ray --jobs N --scheduler ADDR (dask) --address ADDR (ray) --retries R`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

BACKENDS = ("loky", "dask", "ray")
#: what each cluster backend needs installed, and how to install it
NEEDS = {"dask": ("distributed", 'pip install "tpred[dask]"'),
         "ray": ("ray", 'pip install "tpred[ray]"')}
#: seconds to wait for a Dask scheduler before giving up with an error naming it
CONNECT_TIMEOUT_S = 30

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """One finished task: its result, or why it failed after the retries.

    Attributes:
        task: the task as given to `run_tasks`.
        result: `fn(task)`; None when the task failed.
        error: None on success, else `"ExceptionType: message"` (the task's own exception, or
            the engine's, e.g. Dask's `KilledWorker` when its workers kept dying).
    """

    task: T
    result: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the task returned a result."""
        return self.error is None


def check_options(backend: str = "loky", jobs: int = 1, address: str | None = None,
                  retries: int = 2) -> None:
    """Validate `run_tasks` options before any work starts.

    Raises:
        ValueError: an unknown backend, a backend whose package is not installed, `jobs` not a
            positive int or -1, `retries` negative, or an `address` given to `loky`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Could not resolve backend {backend!r} among choices "
                         f"{{{', '.join(BACKENDS)}}}")
    if backend in NEEDS and importlib.util.find_spec(NEEDS[backend][0]) is None:
        raise ValueError(f"backend {backend!r} needs the {NEEDS[backend][0]!r} package, which is "
                         f"not installed ({NEEDS[backend][1]}); or use backend 'loky'")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not (jobs >= 1 or jobs == -1):
        raise ValueError(f"jobs must be a positive int or -1 (all cores), got {jobs!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    if address is not None and backend == "loky":
        raise ValueError(f"a cluster address ({address!r}) needs backend 'dask' or 'ray', "
                         "not 'loky'")


def run_tasks(fn: Callable[[T], R], tasks: Sequence[T], *, backend: str = "loky",
              jobs: int = 1, address: str | None = None, retries: int = 2,
              progress: bool = False, desc: str = "tasks",
              max_in_flight: int | None = None) -> Iterator[Outcome[T, R]]:
    """Run `fn` on every task; yield each `Outcome` as soon as it finishes (module docstring).

    Args:
        fn: picklable callable `task -> result`, importable on the workers.
        tasks: the tasks, one per unit of work (a (model, dataset) pair).
        backend: `"loky"`, `"dask"` or `"ray"`.
        jobs: local workers (`-1`: all cores): loky processes, or the size of the local Dask/Ray
            cluster started when no cluster is given.
        address: the cluster to use (Dask scheduler address or scheduler file; Ray address).
        retries: extra attempts of a failed task on Dask and Ray.
        progress: show a tqdm bar (one step per task).
        desc: the bar's label.
        max_in_flight: submitted-but-unfinished tasks on Dask and Ray.

    Yields:
        `Outcome(task, result, error)`, in completion order; exactly one per task.

    Raises:
        ValueError: bad options (`check_options`) or a cluster that cannot be reached (the
            message names the address).
    """
    check_options(backend, jobs, address, retries)
    from tqdm.auto import tqdm

    if not tasks:
        return
    run = {"loky": _run_loky, "dask": _run_dask, "ray": _run_ray}[backend]
    with tqdm(total=len(tasks), unit="task", desc=desc, disable=not progress) as bar:
        for outcome in run(fn, tasks, jobs=jobs, address=address, retries=retries,
                           max_in_flight=max_in_flight):
            if not outcome.ok:
                log.warning("%s: task %r failed: %s", desc, outcome.task, outcome.error)
            yield outcome
            bar.update()


# ------------------------------------------------------------------------------- loky
def _guarded(fn: Callable[[T], R], task: T) -> Outcome[T, R]:
    """Run one task in a loky worker, turning an exception into a reported failure.

    The one broad `except` of tpred, on purpose: this is the task boundary, where Dask and Ray
    also catch everything a task raises and hand it back as data; without it one bad task would
    abort joblib's whole run. KeyboardInterrupt and SystemExit still stop the run.
    """
    try:
        return Outcome(task, fn(task))
    except Exception as err:  # see the docstring
        return Outcome(task, None, f"{type(err).__name__}: {err}")


def _run_loky(fn: Callable[[T], R], tasks: Sequence[T], *, jobs: int, address: str | None,
              retries: int, max_in_flight: int | None) -> Iterator[Outcome[T, R]]:
    from joblib import Parallel, delayed

    del address, retries, max_in_flight  # one machine: nothing to connect, a failure repeats
    # `generator_unordered` streams results as they finish; with n_jobs=1 joblib runs the
    # tasks in this process, in order (no pickling, no worker start-up).
    yield from Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")(
        delayed(_guarded)(fn, task) for task in tasks)


# ------------------------------------------------------------------------------- dask
@contextlib.contextmanager
def dask_client(address: str | None = None, jobs: int = 1) -> Iterator[Any]:
    """A `distributed.Client`: to `address`, the active one, the configured one, or local.

    Closes what it opened (client and local cluster); leaves an active client open.

    Raises:
        ValueError: the scheduler at `address` (or in the Dask config) cannot be reached.
    """
    import dask
    from distributed import Client, LocalCluster, get_client

    if address is None:
        try:
            active = get_client()
        except ValueError:  # no client in this process
            active = None
        if active is not None:
            yield active
            return
    target = address or dask.config.get("scheduler-address", None)
    cluster = None
    try:
        if target is None:
            cluster = LocalCluster(n_workers=jobs if jobs > 0 else os.cpu_count() or 1,
                                   threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        elif str(target).endswith(".json") and Path(target).is_file():
            client = Client(scheduler_file=str(target), timeout=CONNECT_TIMEOUT_S)
        else:
            client = Client(target, timeout=CONNECT_TIMEOUT_S)
    except OSError as err:  # distributed raises OSError (TimeoutError) when it cannot connect
        if cluster is not None:
            cluster.close()
        raise ValueError(f"backend 'dask': cannot connect to the scheduler {target!r} "
                         f"({type(err).__name__}: {err})") from err
    log.info("dask: %s", client)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_dask(fn: Callable[[T], R], tasks: Sequence[T], *, jobs: int, address: str | None,
              retries: int, max_in_flight: int | None) -> Iterator[Outcome[T, R]]:
    from distributed import as_completed

    with dask_client(address, jobs) as client:
        slots = sum(client.nthreads().values()) or 1
        window = max_in_flight or max(8, 4 * slots)
        todo = iter(tasks)
        owner: dict[Any, T] = {}

        def submit(task: T) -> Any:
            future = client.submit(fn, task, retries=retries, pure=False)
            owner[future] = task
            return future

        # on this client's loop: without `loop`, as_completed tracks the futures on the
        # *default* client's loop (the first Client of the process, e.g. the caller's own), and
        # a future's event bound there fails `result()` on ours ("bound to a different event
        # loop"), intermittently, e.g. when a killed worker's task is rescheduled
        running = as_completed([submit(t) for t in itertools.islice(todo, window)],
                               loop=client.loop)
        try:
            for future in running:
                task = owner.pop(future)
                if future.status == "finished":
                    outcome = Outcome(task, future.result())
                else:  # "error" after the retries, or "cancelled" (e.g. the scheduler restarted)
                    err = future.exception() if future.status == "error" else None
                    outcome = Outcome(task, None, f"{type(err).__name__}: {err}" if err else
                                      f"dask future {future.status}")
                future.release()  # let the cluster forget the result
                for nxt in itertools.islice(todo, 1):
                    running.add(submit(nxt))
                yield outcome
        finally:  # stopped early (an error, a break): nothing keeps running on the cluster
            if owner:
                client.cancel(list(owner))


# ------------------------------------------------------------------------------- ray
def _call(fn: Callable[[T], R], task: T) -> R:
    """`fn(task)`: the one function Ray registers (`ray.remote` wants a plain function)."""
    return fn(task)


@contextlib.contextmanager
def ray_runtime(address: str | None = None, jobs: int = 1) -> Iterator[None]:
    """Ray connected to `address`, the runtime already initialised, or a new local one.

    Shuts down what it started; leaves a runtime it found initialised.

    Raises:
        ValueError: the cluster at `address` cannot be reached.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs["num_cpus"] = jobs if jobs > 0 else os.cpu_count() or 1
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as err:
        raise ValueError(f"backend 'ray': cannot connect to the cluster {address!r} "
                         f"({type(err).__name__}: {err})") from err
    log.info("ray: %s", ray.cluster_resources())
    try:
        yield
    finally:
        ray.shutdown()


def _run_ray(fn: Callable[[T], R], tasks: Sequence[T], *, jobs: int, address: str | None,
             retries: int, max_in_flight: int | None) -> Iterator[Outcome[T, R]]:
    import ray
    from ray.exceptions import RayError, RayTaskError

    with ray_runtime(address, jobs):
        remote = ray.remote(_call).options(num_cpus=1, max_retries=retries,
                                           retry_exceptions=retries > 0)
        slots = int(ray.cluster_resources().get("CPU", 1)) or 1
        window = max_in_flight or max(8, 4 * slots)
        todo = iter(tasks)
        fn_ref = ray.put(fn)  # shipped once, not with every task
        owner: dict[Any, T] = {remote.remote(fn_ref, t): t for t in itertools.islice(todo, window)}
        try:
            while owner:
                (ref,), _ = ray.wait(list(owner), num_returns=1)
                task = owner.pop(ref)
                try:
                    outcome = Outcome(task, ray.get(ref))
                except RayTaskError as err:  # the task raised: report its own exception
                    cause = err.cause if err.cause is not None else err
                    outcome = Outcome(task, None, f"{type(cause).__name__}: {cause}")
                except RayError as err:  # a worker or node died more often than `retries`
                    outcome = Outcome(task, None, f"{type(err).__name__}: {err}")
                for nxt in itertools.islice(todo, 1):
                    owner[remote.remote(fn_ref, nxt)] = nxt
                yield outcome
        finally:
            for ref in owner:
                ray.cancel(ref)


# ------------------------------------------------------------------------------- command lines
def add_arguments(parser: argparse.ArgumentParser, *, jobs_help: str = "parallel workers") -> None:
    """Add `--backend --jobs --scheduler --address --retries` to a command line."""
    group = parser.add_argument_group("execution (tpred.parallel)")
    group.add_argument("--backend", choices=BACKENDS, default="loky",
                       help="loky: local processes; dask or ray: a cluster (tpred[dask], "
                            "tpred[ray])")
    group.add_argument("--jobs", type=int, default=1,
                       help=f"{jobs_help} (-1: all cores); the size of the local cluster "
                            "started when dask/ray get no address")
    group.add_argument("--scheduler", default=None, metavar="ADDR",
                       help="dask: scheduler address (tcp://host:8786) or scheduler file; "
                            "default: the active client, the Dask config, else a local cluster")
    group.add_argument("--address", default=None, metavar="ADDR",
                       help="ray: cluster address (ray://host:10001, host:6379, auto); default: "
                            "RAY_ADDRESS, else a local Ray")
    group.add_argument("--retries", type=int, default=2,
                       help="dask/ray: extra attempts of a failed task (default 2)")


def options(args: argparse.Namespace) -> dict[str, Any]:
    """`run_tasks` keyword arguments from the options of `add_arguments`.

    Raises:
        ValueError: `--scheduler` without `--backend dask`, or `--address` without
            `--backend ray`.
    """
    if args.scheduler is not None and args.backend != "dask":
        raise ValueError(f"--scheduler is the Dask scheduler; it needs --backend dask "
                         f"(got --backend {args.backend})")
    if args.address is not None and args.backend != "ray":
        raise ValueError(f"--address is the Ray cluster; it needs --backend ray "
                         f"(got --backend {args.backend})")
    return {"backend": args.backend, "jobs": args.jobs, "retries": args.retries,
            "address": args.scheduler if args.backend == "dask" else args.address}
