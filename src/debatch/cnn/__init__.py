"""The CNN: crops in, a trained network and per-cell embeddings out.

- ``data``: opens the crop set and scales, flips and rotates crops into the network's input;
- ``models``: builds the ResNet backbone and its CosFace/ArcFace heads;
- ``augment``: perturbs feature statistics (DSU, MixStyle, ABRA's adversarial statistics);
- ``methods``: turns a training recipe into its network and step loss (``STEP_LOSSES``);
- ``teacher``: keeps the mean teacher of the DeepNoise recipe;
- ``inputs``: splits cells into training and held-out and fixes the input scaling;
- ``checkpoint``: builds, resumes and saves a run (``checkpoints/last.pt``, ``model.pt``);
- ``train``: trains one method (``train_model``);
- ``embed``: embeds every crop of a plate with a trained model (``embed_plate``).

Everything here imports torch; the rest of debatch does not, so import these modules by name.
"""

__all__ = [
    "data",
    "models",
    "augment",
    "methods",
    "teacher",
    "inputs",
    "checkpoint",
    "train",
    "embed",
]
