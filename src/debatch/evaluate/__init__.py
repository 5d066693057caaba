"""Evaluation of well profiles: how much batch is left, how much biology survives.

- ``metrics``: scores batch removal and biology conservation, each in [0, 1];
- ``diagnostics``: computes every metric of a source x correction (``compute_metrics``);
- ``truth``: scores profiles against a generated screen's ground truth (``truth_scores``);
- ``compare``: ranks sources x corrections over seeds with paired intervals (``ranking``);
- ``verdict``: words the report's first paragraph from the ranking (``headline``).

Settings: ``diagnostics`` (debatch.settings.DIAGNOSTICS).
"""

__all__ = ["metrics", "diagnostics", "truth", "compare", "verdict"]
