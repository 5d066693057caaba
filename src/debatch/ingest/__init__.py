"""Ingest: a plate's image files and platemap turned into its manifest.

- ``manifest``: finds a plate's images and ties them to their wells (``build_manifest``);
- ``sheets``: reads hand-written tables: plate sheet, platemaps, CSV manifests (``read_sheet``).
"""

__all__ = ["manifest", "sheets"]
