"""Training-step speed on the CPU: a full S4L step vs a plain supervised step.

The S4L step (thesis eq. 3.2 plus rotation) on the multi-image model: clean forward → masked
cross-entropy + entropy minimisation; VAT with one power iteration (two extra forwards and
backwards, BatchNorm statistics frozen); rotation prediction on ``--rotation-frames`` random real
frames per recording, each rotated 4 ways (1 by default: all 10 would add 4× the supervised
forward); Adam. The supervised step is clean forward + masked cross-entropy + Adam.

Supervised and S4L steps alternate and each figure is the median step. Each (allocator, image
size, memory format) runs in its own subprocess so that its peak RSS
(``getrusage``) is its own; the parent runs every configuration with jemalloc preloaded and with
glibc's default allocator (channels_last only unless ``--glibc-all``, to stay under ~4 minutes)
and prints one table. The machine is shared: read figures as ±30 %.

    LD_PRELOAD is set per subprocess by the script itself:
    .venv/bin/python benchmarks/train_speed.py [--sizes 224 112] [--steps 2] [--warmup 2] [--glibc-all]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TARGETS_REC_S = {224: 1.25, 112: 3.0}  # recordings/s the full S4L step should reach


@dataclass(frozen=True)
class BenchConfig:
    image_size: int = 224
    channels_last: bool = True
    batch: int = 4  # recordings per step
    frames: int = 10
    width: float = 0.5
    rotation_frames: int = 1  # real frames per recording for the rotation task
    warmup: int = 2  # oneDNN builds its kernels over the first steps of each shape
    steps: int = 2
    threads: int = 2


def _measure(cfg: BenchConfig) -> dict:
    import resource

    import torch

    from training.losses import (
        VatConfig, entropy_minimisation, masked_cross_entropy, rotate_batch, rotation_loss,
        select_rotation_frames, vat_loss,
    )
    from training.models import RecordingModel
    from training.schema import load_label_config

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(0)
    heads = {s.name: len(s.classes) for s in load_label_config().labels}
    model = RecordingModel(heads, frames=cfg.frames, width=cfg.width).train()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    s = cfg.image_size
    frames = torch.randint(0, 256, (cfg.batch, cfg.frames, 1, s, s)).float() / 128 - 1
    mask = torch.ones(cfg.batch, cfg.frames)
    mask[-1, cfg.frames // 2:] = 0  # one short recording, as real batches have
    targets = torch.stack([torch.randint(-1, c, (cfg.batch,)) for c in heads.values()], dim=1)
    fn = lambda f: model(f, mask)

    def supervised() -> torch.Tensor:
        return masked_cross_entropy(fn(frames), targets)[0]

    def s4l() -> torch.Tensor:
        logits = fn(frames)
        sup = masked_cross_entropy(logits, targets)[0]
        ent = entropy_minimisation(logits)
        vat = vat_loss(fn, frames, logits, model=model, cfg=VatConfig(n_power=1))
        images, rot_targets = rotate_batch(select_rotation_frames(frames, mask, cfg.rotation_frames))
        rot = rotation_loss(model.rotation_logits(images), rot_targets)
        return 0.3 * sup + 0.3 * ent + 0.3 * vat + rot

    def step_seconds(loss_fn) -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()
        return time.perf_counter() - start

    # Alternating the two kinds of step makes a change in the machine's load hit both alike.
    times: dict = {supervised: [], s4l: []}
    for i in range(cfg.warmup + cfg.steps):
        for loss_fn, seconds in times.items():
            t = step_seconds(loss_fn)
            if i >= cfg.warmup:
                seconds.append(t)
    sup, full = (cfg.batch / statistics.median(times[f]) for f in (supervised, s4l))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return {"supervised_rec_s": sup, "s4l_rec_s": full, "s4l_cost_x": sup / full, "peak_rss_mb": peak_mb}


def _run_child(cfg: BenchConfig, jemalloc: bool) -> dict:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if jemalloc:
        env["LD_PRELOAD"] = JEMALLOC
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(asdict(cfg))],
        env=env, check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 112])
    ap.add_argument("--steps", type=int, default=BenchConfig.steps)
    ap.add_argument("--warmup", type=int, default=BenchConfig.warmup)
    ap.add_argument("--rotation-frames", type=int, default=BenchConfig.rotation_frames)
    ap.add_argument("--glibc-all", action="store_true",
                    help="glibc for every configuration (default: channels_last only, ~3x slower each)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_measure(BenchConfig(**json.loads(args.child)))))
        return
    if not os.path.exists(JEMALLOC):
        sys.exit(f"jemalloc not found at {JEMALLOC} (Debian package libjemalloc2)")
    print(f"{'alloc':8} {'size':>4} {'format':13} {'sup rec/s':>9} {'S4L rec/s':>9} {'S4L/sup':>7} "
          f"{'peak RSS':>9}  target")
    t0 = time.perf_counter()
    for size in args.sizes:
        for channels_last in (False, True):
            cfg = BenchConfig(image_size=size, channels_last=channels_last, steps=args.steps,
                              warmup=args.warmup, rotation_frames=args.rotation_frames)
            for jemalloc in (True, False) if (channels_last or args.glibc_all) else (True,):
                r = _run_child(cfg, jemalloc)
                target = TARGETS_REC_S.get(size)
                verdict = "" if target is None else f"{'ok' if r['s4l_rec_s'] >= target else 'MISS'} (>= {target})"
                print(f"{'jemalloc' if jemalloc else 'glibc':8} {size:4d} "
                      f"{'channels_last' if channels_last else 'contiguous':13} {r['supervised_rec_s']:9.2f} "
                      f"{r['s4l_rec_s']:9.2f} {r['s4l_cost_x']:6.1f}x {r['peak_rss_mb']:7.0f}MB  {verdict}",
                      flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s; batch {BenchConfig.batch} recordings x "
          f"{BenchConfig.frames} frames, width {BenchConfig.width}, rotation on {args.rotation_frames} "
          f"frame(s)/recording x 4; shared 2-core CPU: figures are noisy (±30 %)")


if __name__ == "__main__":
    main()
