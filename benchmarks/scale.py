"""Training's memory and speed from 1,000 to 20,000 recordings: the disk frame store against the in-RAM one.

    python benchmarks/scale.py [--sizes 1000,5000,20000] [--image-size 112] [--frames 10] [--max-batches 6]

Recordings are generated cheaply: a pool of `--pool` synthetic recordings (training/synthetic.py) is drawn
once, and every benchmark recording is a folder link to one of the pool's frame folders, so the frame refs
(and so the cache entries) differ per recording while only the pool's frames are ever drawn. The frame cache
is built once per size (timed, "cache build"); then each (size, store) runs in a fresh process that does
what `training.fit` does up to its first epochs, bounded to `--max-batches` batches each: read the export,
open the frame store from the cache, a supervised pass, an S4L pass (CE + EntMin + VAT + rotation), a
precise-BatchNorm pass and an evaluation pass over that many batches of recordings drawn from the whole set.
Printed per run: time to the first training batch (from reading the export), recordings/s of the two
training passes, and the process's peak RSS. `--item-timing` times only the assembly of one recording item from
each store. Nothing is written outside `--work` (default: a temp folder).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_dataset(work: Path, n: int, pool: int, frames: int, size: int) -> Path:
    """work/data/scale<n>/export.json with n recordings linked to the pool's frame folders."""
    from training.synthetic import generate

    data = work / "data"
    pool_dir = data / "pool"
    if not (pool_dir / "export.json").exists():
        generate(pool_dir, recordings=pool, subjects=max(pool // 4, 1), frames=frames, size=size, seed=0)
    folder = data / f"scale{n}"
    export = folder / "export.json"
    if export.exists():
        return export
    tasks = json.loads((pool_dir / "export.json").read_text(encoding="utf-8"))
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        task = json.loads(json.dumps(tasks[i % pool]))
        src = task["data"]["recording_id"]
        rid = f"rec_{i:06d}"
        link = folder / "frames" / rid
        if not link.exists():
            os.symlink(pool_dir / "frames" / src, link)
        task["id"] = i + 1
        task["data"]["recording_id"], task["data"]["subject_id"] = rid, f"subj_{i // 3:06d}"
        task["data"]["frames"] = [u.replace(f"pool/frames/{src}/", f"scale{n}/frames/{rid}/") for u in task["data"]["frames"]]
        out.append(task)
    export.write_text(json.dumps(out), encoding="utf-8")
    return export


def child(args) -> None:
    """One measured run; prints one JSON line."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from training.config import DataConfig, LossConfig, ModelConfig
    from training.dataset import RecordingDataset, load_recordings
    from training.distributed import DistContext
    from training.export_reader import read_export
    from training.fit import build_model
    from training.frame_source import FrameFetcher, FrameSourceConfig
    from training.precise_bn import recompute_bn_stats
    from training.schema import load_label_config
    from training.trainer import S4LObjective, clean_forward, predict_logits, stats_loader, train_epoch, train_loader
    from training.batch_feed import feed

    ctx = DistContext()
    start = time.perf_counter()
    schema = load_label_config()
    recordings = read_export(args.export, schema).recordings
    data = DataConfig(frames=args.frames, image_size=args.image_size, store=args.store)
    fetch = FrameFetcher(FrameSourceConfig(document_root=str(Path(args.export).parents[1]))).fetch
    store = load_recordings(recordings, schema, data, fetch, Path(args.cache), progress=False)
    rows = list(range(len(store.recording_ids)))
    ds = RecordingDataset(store, rows, store.labels, args.frames, jitter=True)
    labelled = [i for i in rows if (store.labels[i] >= 0).any()]
    loader, _ = train_loader(ds, args.batch_size, ctx, seed=0, labelled=labelled,
                             labelled_per_batch=args.batch_size // 2)
    bounded = DataLoader(ds, batch_sampler=list(itertools.islice(loader.batch_sampler, args.max_batches)))
    torch.manual_seed(0)
    model = build_model(schema, ModelConfig(), args.frames).to(memory_format=torch.channels_last)
    first = {}

    class Timed(S4LObjective):
        def forward(self, *a, **k):
            first.setdefault("s", time.perf_counter() - start)
            return super().forward(*a, **k)

    objective = Timed(model, LossConfig(), schema.names, 2, None, None)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    rates = {}
    for name, semi in (("supervised", False), ("s4l", True)):
        stats = train_epoch(objective, bounded, optimizer, scheduler, semi=semi, ctx=ctx, progress=False, desc=name)
        rates[name] = stats["items_per_s"]
    bn = stats_loader(ds, args.batch_size, ctx)
    recompute_bn_stats(model, itertools.islice(feed(bn, ctx.device), args.max_batches), clean_forward(ctx.device))
    picked = np.random.default_rng(0).choice(len(rows), size=min(len(rows), args.max_batches * args.batch_size),
                                             replace=False)
    predict_logits(model, RecordingDataset(store, picked.tolist(), store.labels, args.frames), args.batch_size, ctx)
    print(json.dumps({"recordings": len(rows), "first_batch_s": first["s"], **rates,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def item_timing(args, export: Path, items: int = 2000) -> None:
    """ms to assemble one recording item (frames read, converted, padded) from each store, two rounds each."""
    import numpy as np

    from training.config import DataConfig
    from training.dataset import RecordingDataset, load_recordings
    from training.export_reader import read_export
    from training.frame_source import FrameFetcher, FrameSourceConfig
    from training.schema import load_label_config

    schema = load_label_config()
    recordings = read_export(export, schema).recordings
    fetch = FrameFetcher(FrameSourceConfig(document_root=str(export.parents[1]))).fetch
    for store in ("disk", "ram", "disk", "ram"):
        data = DataConfig(frames=args.frames, image_size=args.image_size, store=store)
        st = load_recordings(recordings, schema, data, fetch, args.work / "cache", progress=False)
        ds = RecordingDataset(st, range(len(st.recording_ids)), st.labels, args.frames, jitter=True)
        picked = np.random.default_rng(0).choice(len(ds), min(items, len(ds)), replace=False)
        started = time.perf_counter()
        for i in picked:
            ds[int(i)]
        print(f"  {store}: {(time.perf_counter() - started) / len(picked) * 1e3:.2f} ms per recording item", flush=True)


def run_child(args, export: Path, store: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--export", str(export), "--cache", str(args.work / "cache"),
           "--store", store, "--image-size", str(args.image_size), "--frames", str(args.frames),
           "--max-batches", str(args.max_batches), "--batch-size", str(args.batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"{store} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_cache(args, export: Path) -> float:
    """Decode and cache every recording's frames once (the runs then read the cache)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
            "from training.config import DataConfig; from training.dataset import load_recordings; "
            "from training.export_reader import read_export; from training.schema import load_label_config; "
            "from training.frame_source import FrameFetcher, FrameSourceConfig; s = load_label_config(); "
            "f = FrameFetcher(FrameSourceConfig(document_root=sys.argv[3])).fetch; "
            "load_recordings(read_export(sys.argv[2], s).recordings, s, "
            "DataConfig(frames=int(sys.argv[5]), image_size=int(sys.argv[6])), f, Path(sys.argv[4]), progress=False)")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(REPO), str(export), str(export.parents[1]), str(args.work / "cache"),
                    str(args.frames), str(args.image_size)], check=True, cwd=REPO)
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000,20000")
    ap.add_argument("--ram-sizes", default="1000,5000,20000", help="sizes at which the in-RAM store runs too")
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--max-batches", type=int, default=3, help="batches per pass (rec/s over these, not full epochs)")
    ap.add_argument("--batch-size", type=int, default=4, help="recordings per batch (benchmarks/train_speed.py's)")
    ap.add_argument("--pool", type=int, default=64, help="distinct synthetic recordings whose frames are linked")
    ap.add_argument("--work", type=Path, help="data, links and frame cache (default: a temp folder)")
    ap.add_argument("--item-timing", action="store_true",
                    help="only time the assembly of one recording item from each store (after the cache build)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--export", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    args.work = args.work or Path(tempfile.mkdtemp(prefix="recmeta-scale-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    ram_sizes = {int(s) for s in args.ram_sizes.split(",") if s}
    print(f"work folder {args.work}; {args.image_size} px, {args.frames} frames, batch {args.batch_size}, "
          f"{args.max_batches} batches per pass, torch threads: default")
    results = []
    for n in sizes:
        export = make_dataset(args.work, n, args.pool, args.frames, args.image_size)
        print(f"{n} recordings: cache build {build_cache(args, export):.0f} s", flush=True)
        if args.item_timing:
            item_timing(args, export)
            continue
        for store in ("disk", "ram") if n in ram_sizes else ("disk",):
            r = run_child(args, export, store)
            results.append((n, store, r))
            print(f"  {store:4}  first batch {r['first_batch_s']:6.1f} s  supervised {r['supervised']:5.2f} rec/s  "
                  f"S4L {r['s4l']:5.2f} rec/s  peak RSS {r['peak_rss_mb']:6.0f} MB", flush=True)
    if not results:
        return 0
    print("\n| recordings | store | first batch s | supervised rec/s | S4L rec/s | peak RSS MB |\n|---|---|---|---|---|---|")
    for n, store, r in results:
        print(f"| {n} | {store} | {r['first_batch_s']:.1f} | {r['supervised']:.2f} | {r['s4l']:.2f} | {r['peak_rss_mb']:.0f} |")
    disk = {n: r for n, s, r in results if s == "disk"}
    ram = {n: r for n, s, r in results if s == "ram"}
    if len(disk) > 1:
        lo, hi = min(disk), max(disk)
        print(f"disk peak RSS {hi} / {lo} recordings: {disk[hi]['peak_rss_mb'] / disk[lo]['peak_rss_mb']:.2f}x (bar <= 1.5x)")
    for n in sorted(set(disk) & set(ram)):
        print(f"{n}: disk / ram rec/s supervised {disk[n]['supervised'] / ram[n]['supervised']:.2f}, "
              f"S4L {disk[n]['s4l'] / ram[n]['s4l']:.2f} (bar >= 0.90)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
