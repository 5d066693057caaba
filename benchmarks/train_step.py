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
(ArcFace head, jittered input scaling), so its ratio to ERM shows how much noise is left. Prints a
markdown table of crops/s per method and the step-time ratio to ERM (the goal for ABRA is
<= 1.5), then the embedding throughput (eval-mode forward, the embed rule's path).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from debatch.cnn import methods
from debatch.cnn.data import jitter_stats, to_input
from debatch.cnn.models import CellResNet
from debatch.core.device import amp_settings, resolve_device
from debatch.settings import METHOD_BLOCKS, TRAIN_METHODS

CROP_SHAPE, N_CLASSES, N_PLATES = (5, 32, 32), 9, 4


def build(method: str, device: torch.device):
    settings = METHOD_BLOCKS[method].merge({})
    torch.manual_seed(0)
    arch = methods.model_arch(method, settings, in_channels=CROP_SHAPE[0], n_classes=N_CLASSES)
    model = CellResNet(**arch).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return settings, model, optimizer, methods.step_loss(method, settings, N_PLATES)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    return parser.parse_args()


class Bench:
    """One fixed batch, and every method's network, optimiser and step loss on it."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = resolve_device(args.device, "--device")
        self.use_amp, self.amp_dtype = amp_settings(self.device, True)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.rng = np.random.default_rng(0)
        self.crops = self.rng.random((args.batch_size, *CROP_SHAPE)).astype(np.float16)
        self.target = torch.from_numpy(self.rng.integers(0, N_CLASSES, args.batch_size)).to(
            self.device
        )
        self.groups = torch.from_numpy(self.rng.integers(0, N_PLATES, args.batch_size)).to(
            self.device
        )
        self.mean = torch.full((1, CROP_SHAPE[0], 1, 1), 0.5, device=self.device)
        self.std = torch.full((1, CROP_SHAPE[0], 1, 1), 0.29, device=self.device)
        self.runs = {method: build(method, self.device) for method in TRAIN_METHODS}

    def step(self, method: str) -> None:
        settings, model, optimizer, loss_fn = self.runs[method]
        if methods.plate_scaling(method):
            size = self.args.batch_size
            batch_mean, batch_std = jitter_stats(
                self.mean.expand(size, -1, -1, -1),
                self.std.expand(size, -1, -1, -1),
                settings["jitter"],
                self.rng,
            )
            x = to_input(self.crops, batch_mean, batch_std, self.device)
        else:
            x = to_input(self.crops, self.mean, self.std, self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            loss, _, _ = loss_fn(model, x, self.target, self.groups)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def seconds_per_step(self) -> dict[str, float]:
        """Each method's fastest of ``repeats`` interleaved rounds, after a warm-up."""
        seconds = {method: [] for method in self.runs}
        for method in self.runs:  # warm-up (cuDNN autotune, allocator)
            for _ in range(2):
                self.step(method)
        for _ in range(self.args.repeats):
            for method in self.runs:
                self.synchronize()
                started = time.perf_counter()
                for _ in range(self.args.steps):
                    self.step(method)
                self.synchronize()
                seconds[method].append((time.perf_counter() - started) / self.args.steps)
        return {method: min(times) for method, times in seconds.items()}

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    bench = Bench(args)
    per_step = bench.seconds_per_step()
    device = bench.device
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {args.threads} threads"
    amp = f"on ({str(bench.amp_dtype).removeprefix('torch.')})" if bench.use_amp else "off"
    print(f"## Training step ({name}, batch {args.batch_size} x {CROP_SHAPE}, amp {amp})\n")
    print("| method | ms/step | crops/s | time vs erm |")
    print("|---|---:|---:|---:|")
    for method, value in per_step.items():
        print(
            f"| {method} | {value * 1000:.1f} | {args.batch_size / value:.0f} | "
            f"{value / per_step['erm']:.2f} |"
        )
    ratio = per_step["abra"] / per_step["erm"]
    verdict = "met" if ratio <= 1.5 else "NOT met"
    embed = embed_crops_per_s(
        bench.runs["erm"][1], bench.crops, bench.mean, bench.std, device, args.repeats
    )
    print(
        f"\nGoal ABRA / ERM step time <= 1.5: {verdict} ({ratio:.2f}). Embedding (eval-mode "
        f"forward as the embed rule runs it, the same network for every method): "
        f"{embed:.0f} crops/s."
    )


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
