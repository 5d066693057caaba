"""The illumination functions of a plate as a picture, one panel per channel."""

from __future__ import annotations

import numpy as np

from debatch.core.plotting import pyplot


def plot_functions(functions: dict[str, np.ndarray], title: str, path) -> None:
    """One panel per channel so a scientist can eyeball vignetting and a bad estimate."""
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(functions), figsize=(max(3 * len(functions), 4.5), 3), squeeze=False
    )
    for ax, (channel, function) in zip(axes[0], functions.items()):
        shown = ax.imshow(function, cmap="magma")
        ax.set_title(channel)
        ax.axis("off")
        fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
