"""The embedded demo screen: a synthetic Cell Painting screen with known ground truth.

- ``design``: lays out treatments and the platemap (``treatment_effects``, ``plate_layout``);
- ``batches``: draws a batch's technical effects (``batch_effects``);
- ``render``: renders one site (``render_site``);
- ``plate``: writes a plate's files in a real instrument's naming (``generate_plate``);
- ``focus_sites``: renders sites made to test focus QC (``focus_sites``);
- ``rxrx1``: generates a siRNA screen in RxRx1's layout, 8-bit PNG (``generate``; a command).

Settings: ``demo.params``, and ``RXRX1_SCREEN`` for ``rxrx1`` (debatch.settings).
"""

__all__ = ["design", "batches", "render", "plate", "focus_sites", "rxrx1"]
