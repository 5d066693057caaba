"""The embedded demo screen: a synthetic Cell Painting screen with known ground truth.

- ``design``: lays out treatments and the platemap (``treatment_effects``, ``plate_layout``);
- ``batches``: draws a batch's technical effects (``batch_effects``);
- ``render``: renders one site (``render_site``);
- ``plate``: writes a plate's files in a real instrument's naming (``generate_plate``);
- ``focus_sites``: renders sites made to test focus QC (``focus_sites``).

Settings: ``demo.params`` (debatch.settings).
"""

__all__ = ["design", "batches", "render", "plate", "focus_sites"]
