"""Training-step throughput of every method on the same batch and backbone, against ERM.

    .venv/bin/python benchmarks/train_step.py [--batch-size 256] [--steps 1] [--repeats 15]
                                               [--threads 2] [--device auto]

One step = input scaling of a float16 batch + forward + loss + backward + AdamW step, exactly as
debatch.train runs it (DeepNoise with per-crop jittered plate statistics, ABRA with its inner
maximisation). Default backbone and crops of the demo: 5 x 32 x 32, width 32, depth 2, 3 stages,
9 classes, 4 plates in the batch. On CUDA, AMP and cuDNN autotune as in the training rule; on
CPU, ``--threads`` torch threads. Methods are timed in interleaved rounds and each method's
fastest round is kept: on a machine shared with other jobs, contention only ever adds time, so the
fastest round is the closest to the method's own cost. DeepNoise does the same network work as ERM
(ArcFace head, jittered input scaling), so its ratio to ERM shows how much noise is left. Prints
crops/s per method and the step-time ratio to ERM (the goal for ABRA is <= 1.5), then the
embedding throughput (eval-mode forward, the embed rule's path).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from debatch import methods
from debatch.cropdata import jitter_stats, to_input
from debatch.models import CellResNet
from debatch.train import amp_settings, resolve_device

CROP_SHAPE, N_CLASSES, N_PLATES = (5, 32, 32), 9, 4


def build(method: str, device: torch.device):
    settings = methods.check_method_settings(method, {})
    torch.manual_seed(0)
    arch = methods.model_arch(method, settings, in_channels=CROP_SHAPE[0], n_classes=N_CLASSES)
    model = CellResNet(**arch).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return settings, model, optimizer, methods.step_loss(method, settings, N_PLATES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    use_amp, amp_dtype = amp_settings(device, True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(0)
    crops = rng.random((args.batch_size, *CROP_SHAPE)).astype(np.float16)
    target = torch.from_numpy(rng.integers(0, N_CLASSES, args.batch_size)).to(device)
    groups = torch.from_numpy(rng.integers(0, N_PLATES, args.batch_size)).to(device)
    mean = torch.full((1, CROP_SHAPE[0], 1, 1), 0.5, device=device)
    std = torch.full((1, CROP_SHAPE[0], 1, 1), 0.29, device=device)

    runs = {method: build(method, device) for method in methods.METHOD_NAMES}
    seconds = {method: [] for method in runs}

    def step(method: str) -> None:
        settings, model, optimizer, loss_fn = runs[method]
        if methods.plate_scaling(method):
            batch_mean, batch_std = jitter_stats(mean.expand(args.batch_size, -1, -1, -1),
                                                 std.expand(args.batch_size, -1, -1, -1),
                                                 settings["jitter"], rng)
            x = to_input(crops, batch_mean, batch_std, device)
        else:
            x = to_input(crops, mean, std, device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            loss, _, _ = loss_fn(model, x, target, groups)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for method in runs:  # warm-up (cuDNN autotune, allocator)
        for _ in range(2):
            step(method)
    for _ in range(args.repeats):
        for method in runs:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(args.steps):
                step(method)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds[method].append((time.perf_counter() - started) / args.steps)

    per_step = {method: min(times) for method, times in seconds.items()}
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {args.threads} threads"
    print(f"train step, batch {args.batch_size} x {CROP_SHAPE}, {name}, "
          f"amp {'on (' + str(amp_dtype).removeprefix('torch.') + ')' if use_amp else 'off'}")
    print(f"{'method':<10} {'ms/step':>8} {'crops/s':>8} {'time vs erm':>12}")
    for method, value in per_step.items():
        print(f"{method:<10} {value * 1000:>8.1f} {args.batch_size / value:>8.0f} "
              f"{value / per_step['erm']:>12.2f}")
    ratio = per_step["abra"] / per_step["erm"]
    verdict = "met" if ratio <= 1.5 else "MISSED"
    print(f"abra/erm step-time ratio {ratio:.2f} (goal <= 1.5: {verdict})")
    print(f"embedding (eval-mode forward as the embed rule runs it; the same network for every "
          f"method): {embed_crops_per_s(runs['erm'][1], crops, mean, std, device, args.repeats):.0f} crops/s")


def embed_crops_per_s(model, crops, mean, std, device, repeats: int) -> float:
    """Fastest of ``repeats`` inference passes over the batch (float32, no autocast, as embed)."""
    model.eval()
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first pass is a warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            model.forward_features(to_input(crops, mean, std, device)).float().cpu()
            best = min(best, time.perf_counter() - started)
    return len(crops) / best


if __name__ == "__main__":
    main()
