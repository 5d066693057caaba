"""The report's UMAP of well profiles against umap-learn's own cosine metric, as wells grow.

    .venv/bin/python benchmarks/umap_wells.py [--wells 500 2000 4000] [--rounds 2]   # ~2 min

Below umap-learn's exact-neighbour size (4,096 rows) debatch's ``umap_embedding`` gives UMAP the
cosine distances as one matrix (``metric="precomputed"``); umap-learn with ``metric="cosine"``
computes the same matrix by calling its compiled metric once per pair from Python. Both are
timed in this process (CPU seconds, one thread, the fastest of ``--rounds``; compilation paid
before), on random profiles of 40 features, with the same seed. Beside the time, the share of
each well's 15 nearest neighbours (cosine, in the profiles) that stay among its 15 nearest on
the map, for both: the maps differ only by the distances' last bits, and should keep the same
neighbourhoods. Goal: not slower than umap-learn's own metric at any size. Prints markdown.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from debatch.report.figures import UMAP_NEIGHBOURS, cosine_distances, import_umap, umap_embedding

FEATURES = 40


def umap_learns(values: np.ndarray, seed: int) -> np.ndarray:
    umap = import_umap()
    model = umap.UMAP(n_neighbors=UMAP_NEIGHBOURS, metric="cosine", random_state=seed, n_jobs=1)
    return np.asarray(model.fit_transform(values))


def neighbours_kept(values: np.ndarray, embedding: np.ndarray, k: int = UMAP_NEIGHBOURS) -> float:
    """Mean share of each row's k nearest rows (cosine) that are among its k nearest on the map."""
    near = np.argsort(cosine_distances(values), axis=1)[:, 1 : k + 1]
    squared = ((embedding[:, None, :] - embedding[None, :, :]) ** 2).sum(-1)
    mapped = np.argsort(squared, axis=1)[:, 1 : k + 1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(near, mapped)]))


def timed(function, *args) -> tuple[float, np.ndarray]:
    started = time.process_time()
    result = function(*args)
    return time.process_time() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wells", type=int, nargs="+", default=[500, 2000, 4000])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, FEATURES))  # eight treatments' profiles, wells around them
    warm = rng.normal(size=(50, FEATURES))
    umap_embedding(warm, 0), umap_learns(warm, 0)  # compilation and imports, paid before
    print("## UMAP of well profiles: debatch's distances against umap-learn's cosine\n")
    print(
        f"Random profiles of {FEATURES} features around 8 centres; CPU s on one thread, fastest "
        f"of {args.rounds} round(s); neighbours kept: share of each well's {UMAP_NEIGHBOURS} "
        "nearest (cosine) still nearest on the map.\n"
    )
    print("| wells | debatch s | umap-learn cosine s | ratio | neighbours kept, debatch | ", end="")
    print("neighbours kept, umap-learn |")
    print("|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for n in args.wells:
        values = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, FEATURES))
        ours = min(
            (timed(umap_embedding, values, 0) for _ in range(args.rounds)), key=lambda t: t[0]
        )
        theirs = min(
            (timed(umap_learns, values, 0) for _ in range(args.rounds)), key=lambda t: t[0]
        )
        ratios.append(ours[0] / theirs[0])
        print(
            f"| {n:,} | {ours[0]:.2f} | {theirs[0]:.2f} | {ratios[-1]:.2f} | "
            f"{neighbours_kept(values, ours[1]):.3f} | {neighbours_kept(values, theirs[1]):.3f} |"
        )
    met = "met" if max(ratios) <= 1.0 else "NOT met"
    print(f"\nGoal debatch's UMAP not slower than umap-learn's own cosine metric: {met} "
          f"(worst ratio {max(ratios):.2f}).")  # fmt: skip


if __name__ == "__main__":
    main()
