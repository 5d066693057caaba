"""Ingest: a plate's image files and platemap turned into its manifest; tables made elsewhere
turned into per-plate tables of a source.

- ``manifest``: finds a plate's images and ties them to their wells (``build_manifest``);
- ``external``: an external source's table as per-plate tables with debatch's metadata
  (``external_cells``);
- ``sheets``: reads hand-written tables: plate sheet, platemaps, CSV manifests (``read_sheet``);
- ``rxrx1``: converts RxRx1's metadata to a plate sheet and platemaps (``convert``).
"""

__all__ = ["manifest", "external", "sheets", "rxrx1"]
