"""Illumination correction.

- ``estimate``: estimates one smooth mean-1 function per plate and channel
  (``compute_plate_illum``);
- ``plot``: draws the functions as the stage's QC picture (``plot_functions``).
"""

__all__ = ["estimate", "plot"]
