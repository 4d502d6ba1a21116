"""Time and peak memory of every transferability metric in `tpred.scores`, and LogME vs the
straightforward per-class implementation of the same algorithm.

    python bench/bench_scores.py          # N, D, C = 2k, 512, 10 / 10k, 1024, 100 / 50k, 2048, 100
    python bench/bench_scores.py --sizes small --metrics logme,hscore
    python bench/bench_scores.py --sizes 10000x1024x100 --metrics logme,leep --repeat 3

On a machine shared with other jobs, run with OPENBLAS_NUM_THREADS=1: oversubscribed OpenBLAS
threads spin and make multi-threaded timings meaningless (measured here: LogME 10.5 s instead of
0.56 s at N = 10,000).

Features are float32 [N, D] (Gaussian around random class means), probabilities for LEEP a
softmax over Cs = 1,000 source classes that favours the true class, source labels their argmax.

Memory, two measures, both as the peak during the call minus the level before it:
* `trace` — tracemalloc: every NumPy array (and Python object) allocated by the call; it does
  not see LAPACK/BLAS workspaces (malloc'ed inside the libraries) or torch tensors.
* `rss` — resident set size sampled every 2 ms by a psutil thread (if psutil is installed):
  sees everything, but misses peaks shorter than 2 ms and memory the allocator reuses.
Both are also given as a multiple of the size of the metric's main input (`xIn`: the float32
features, the float32 probs for LEEP, the int64 source labels for NCE). Timings (wall clock, and
CPU time of the process) are the best of `--repeat` runs without tracing; the memory run is a
separate, traced run.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # run from a checkout without installing tpred

SIZES = {"small": (2_000, 512, 10), "medium": (10_000, 1_024, 100),
         "large": (50_000, 2_048, 100)}
NUM_SOURCE_CLASSES = 1_000


# --------------------------------------------------------------------------------------------
# The straightforward LogME, structured like the original code (thuml/LogME `_fit_fixed_point`):
# cast to float64, SVD of FᵀF (N > D) or of F, U = F V / s [N, k], then a Python loop over the
# classes, each with its own Python fixed point. Written from metrics.md §1, not copied. No
# N < D fix (log det over the k computed values only), so it is only correct for N > D.
# --------------------------------------------------------------------------------------------
def logme_per_class_loop(features, labels) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class reference. Returns (score, alphas [C], betas [C], evidences [C])."""
    f = np.asarray(features).astype(np.float64)                           # [N, D] copy
    _, y = np.unique(labels, return_inverse=True)
    n, d = f.shape
    if n > d:
        _, s, vh = np.linalg.svd(f.T @ f)                                 # FᵀF = V diag(s²) Vᵀ
        s = np.sqrt(s)
        k = int((s > 1e-10).sum())
        s, vh = s[:k], vh[:k]                                              # [k], [k, D]
        u = f @ vh.T / s                                                   # [N, k]
    else:
        u, s, vh = np.linalg.svd(f, full_matrices=False)
    sigma = s ** 2
    evidences, alphas, betas, ms = [], [], [], []
    for c in range(int(y.max()) + 1):
        t = (y == c).astype(np.float64)                                    # [N]
        x = u.T @ t                                                        # [k]
        x2 = x ** 2
        res_x2 = t @ t - x2.sum()
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            lam = alpha / beta
            gamma = (sigma / (sigma + lam)).sum()
            m2 = (sigma * x2 / (lam + sigma) ** 2).sum()
            res2 = (x2 / (1 + sigma / lam) ** 2).sum() + res_x2
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - lam) / lam <= 1e-3:
                break
        evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta)
                    - 0.5 * np.sum(np.log(alpha + beta * sigma))
                    - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi))
        ms.append(vh.T @ (s * x / (sigma + lam)))                          # [D] weights
        evidences.append(evidence / n)
        alphas.append(alpha)
        betas.append(beta)
    ev = np.array(evidences)
    return float(ev.mean()), np.array(alphas), np.array(betas), ev


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------
class RssPeak:
    """Peak RSS above the level at `start`, sampled by a thread every `interval` seconds."""

    def __init__(self, interval: float = 0.002) -> None:
        try:
            import psutil
        except ImportError:  # optional: the bench then reports tracemalloc only
            self.proc = None
            return
        self.proc, self.interval = psutil.Process(), interval

    def __enter__(self) -> RssPeak:
        self.peak = self.base = self.proc.memory_info().rss if self.proc else 0
        self._stop = threading.Event()
        if self.proc:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.proc:
            self._thread.join()
            self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def delta(self) -> float | None:
        return (self.peak - self.base) if self.proc else None


def measure(fn: Callable[[], object], repeat: int, memory: bool) -> dict:
    """Best wall and CPU (all threads) time over `repeat` untraced calls, then one traced call
    for memory. On a shared machine the CPU time is the steadier figure (with one BLAS thread:
    OPENBLAS_NUM_THREADS=1; with more, it also counts threads spinning while they wait)."""
    times, cpu, value = [], [], None
    for _ in range(repeat):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        value = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    out = {"time": min(times), "cpu": min(cpu), "value": value, "trace": None, "rss": None}
    if memory:
        gc.collect()
        with RssPeak() as rss:
            tracemalloc.start()
            tracemalloc.reset_peak()
            fn()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        out["trace"], out["rss"] = peak, rss.delta
    return out


def make_data(n: int, d: int, c: int, seed: int = 0):
    """float32 features [N, D], labels [N], softmax probs [N, Cs] (float32), source labels [N]."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    rng.shuffle(y)
    means = rng.standard_normal((c, d), dtype=np.float32) * 0.5
    features = rng.standard_normal((n, d), dtype=np.float32)
    features += means[y]
    logits = rng.standard_normal((n, NUM_SOURCE_CLASSES), dtype=np.float32)
    logits[np.arange(n), y % NUM_SOURCE_CLASSES] += 3.0  # the source head half-knows the task
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return features, y, probs, probs.argmax(axis=1)


def available_metrics() -> dict[str, tuple[Callable, str, bool]]:
    """name -> (function, needs, random) from tpred.scores.METRICS, else by name; skips missing."""
    out: dict[str, tuple[Callable, str, bool]] = {}
    try:
        from tpred.scores import METRICS
    except ImportError:
        METRICS = None
    if METRICS is not None:
        for name, spec in METRICS.items():
            try:
                fn = spec.fn.resolve() if hasattr(spec.fn, "resolve") else spec.fn
            except (ImportError, AttributeError) as err:
                print(f"# {name}: not available ({err})")
                continue
            out[name] = (fn, spec.needs, spec.random)
    else:
        import importlib

        table = [("logme", "logme", "features"), ("leep", "leep", "probs"),
                 ("nce", "nce", "source_labels"), ("hscore", "hscore", "features"),
                 ("hscore_shrinkage", "hscore", "features"), ("nleep", "nleep", "features"),
                 ("sfda", "sfda", "features"), ("gbc", "gbc", "features"),
                 ("parc", "parc", "features"), ("transrate", "transrate", "features"),
                 ("ncti_components", "ncti", "features")]
        for name, module, needs in table:
            try:
                fn = getattr(importlib.import_module(f"tpred.scores.{module}"), name)
            except (ImportError, AttributeError) as err:
                print(f"# {name}: not available ({err})")
                continue
            out[name] = (fn, needs, name in {"nleep", "ncti_components"})
    for name in ("ped", "spread_attract"):  # feature transforms, timed on their own
        try:
            from tpred.scores import enhance
            out[name] = (getattr(enhance, name), "features", False)
        except (ImportError, AttributeError) as err:
            print(f"# {name}: not available ({err})")
    return out


def skip_reason(name: str, n: int, d: int, c: int) -> str | None:
    """Metrics too heavy for a quick run at this size (run them with --no-skip)."""
    if name == "nleep" and n > 2_000:
        return "GMM with 5·C full-covariance components: minutes to hours at this N"
    if name == "parc" and n > 15_000:
        return f"O(N²) dissimilarity matrices: {8 * n * n / 2**30:.0f} GiB each"
    return None


def fmt_bytes(b: float | None, ref: int) -> str:
    if b is None:
        return f"{'-':>21}"
    return f"{b / 2**20:8.1f} MiB {b / ref:5.2f}xIn"


def parse_sizes(spec: str) -> list[tuple[int, int, int]]:
    if spec == "all":
        return list(SIZES.values())
    out = []
    for part in spec.split(","):
        if part in SIZES:
            out.append(SIZES[part])
        else:
            n, d, c = (int(v) for v in part.lower().split("x"))
            out.append((n, d, c))
    return out


def run_size(n: int, d: int, c: int, metrics: dict, args: argparse.Namespace) -> None:
    """Benchmark every metric at one size, then LogME against the per-class loop."""
    memory = not args.no_memory
    features, y, probs, source = make_data(n, d, c)
    fbytes = features.nbytes
    print(f"\n== N={n:,} D={d:,} C={c} (features float32 {fbytes / 2**20:.1f} MiB; "
          f"probs [N, {NUM_SOURCE_CLASSES}]) ==")
    print(f"{'metric':<18} {'wall s':>8} {'cpu s':>8}  {'trace peak':>21}  {'rss peak':>21}  "
          f"value")
    for name, (fn, needs, random) in metrics.items():
        if not args.no_skip and (why := skip_reason(name, n, d, c)):
            print(f"{name:<18} skipped: {why}")
            continue
        first = {"features": features, "probs": probs, "source_labels": source}[needs]
        kwargs = {"random_state": 0} if random else {}
        res = measure(lambda fn=fn, first=first, kw=kwargs: fn(first, y, **kw),  # noqa: B023
                      args.repeat, memory)
        value = res["value"]
        shown = (f"{value:.6g}" if isinstance(value, float)
                 else f"array {getattr(value, 'shape', '')}" if hasattr(value, "shape")
                 else str(value)[:40])
        print(f"{name:<18} {res['time']:8.3f} {res['cpu']:8.3f}  "
              f"{fmt_bytes(res['trace'], first.nbytes)}  "
              f"{fmt_bytes(res['rss'], first.nbytes)}  {shown}")

    if not args.no_reference and "logme" in metrics:
        from tpred.scores.logme import LogME, logme

        fast = measure(lambda: logme(features, y), args.repeat, memory)
        slow = measure(lambda: logme_per_class_loop(features, y), args.repeat, memory)
        model = LogME()
        model.fit(features, y)
        _, alphas, betas, evidences = slow["value"]
        rel = float(np.max(np.abs(model.evidences - evidences) / np.abs(evidences)))
        score_rel = abs(fast["value"] - slow["value"][0]) / abs(slow["value"][0])
        print(f"-- LogME vectorised vs per-class loop (N={n:,}, D={d:,}, C={c}) --")
        print(f"   wall: vectorised {fast['time']:.3f} s, loop {slow['time']:.3f} s, "
              f"speed-up {slow['time'] / fast['time']:.1f}x")
        print(f"   cpu:  vectorised {fast['cpu']:.3f} s, loop {slow['cpu']:.3f} s, "
              f"speed-up {slow['cpu'] / fast['cpu']:.1f}x")
        print(f"   score {fast['value']:.12f} vs {slow['value'][0]:.12f}: rel. diff "
              f"{score_rel:.2e}; per-class evidences max rel. diff {rel:.2e}; "
              f"alphas {np.max(np.abs(model.alphas / alphas - 1)):.2e}, "
              f"betas {np.max(np.abs(model.betas / betas - 1)):.2e}")
        if memory:
            print(f"   peak memory vectorised: trace {fmt_bytes(fast['trace'], fbytes)}, "
                  f"rss {fmt_bytes(fast['rss'], fbytes)}")
            print(f"   peak memory loop:       trace {fmt_bytes(slow['trace'], fbytes)}, "
                  f"rss {fmt_bytes(slow['rss'], fbytes)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="all",
                        help="all | small | medium | large | NxDxC, comma-separated")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated names (default: every available metric)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (best is reported)")
    parser.add_argument("--no-memory", action="store_true", help="skip the traced memory runs")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the per-class LogME comparison")
    parser.add_argument("--no-skip", action="store_true", help="run heavy metrics at any size")
    args = parser.parse_args(argv)

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    metrics = available_metrics()
    if args.metrics:
        wanted = [m.strip() for m in args.metrics.split(",") if m.strip()]
        if unknown := sorted(set(wanted) - set(metrics)):
            parser.error(f"unknown or unavailable metric(s) {unknown}; available: "
                         f"{sorted(metrics)}")
        metrics = {m: metrics[m] for m in wanted}
    if "logme" in metrics:
        import torch  # noqa: F401  (LogME's default device checks torch.cuda: import it untimed)
    for n, d, c in parse_sizes(args.sizes):
        run_size(n, d, c, metrics, args)
        gc.collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
