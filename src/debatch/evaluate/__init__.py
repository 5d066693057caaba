"""Evaluation of well profiles: batch-removal and biology metrics (metrics) and everything a
source x correction is scored on, held-out batches and the demo's ground truth included
(diagnostics). Settings: ``diagnostics`` (debatch.settings.DIAGNOSTICS).
"""
