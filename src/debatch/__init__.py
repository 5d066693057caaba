"""debatch: Cell Painting images to batch-robust profiles (see README.md)."""

__version__ = "0.1.0"
