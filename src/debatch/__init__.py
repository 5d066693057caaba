"""debatch: Cell Painting images to batch-robust profiles (see README.md).

One package per stage, each importing only the layers below it (docs/architecture.md):

- ``settings``: every stage's defaults, allowed values and column names;
- ``core``: the helpers every stage shares (files, images, wells, shards, ...);
- ``ingest``: turns a plate's images and platemap into its manifest;
- ``illum``: estimates the illumination correction;
- ``segment``: segments nuclei and cells and flags sites by image QC;
- ``crops``: cuts a corrected crop around every cell;
- ``features``: measures CellProfiler's features of every cell;
- ``profiles``: aggregates, normalises, selects and corrects well profiles;
- ``evaluate``: scores profiles for batch left and biology kept, and ranks them;
- ``demo``: generates the demo screen with its ground truth;
- ``cnn``: trains the crop CNN and embeds crops (the only torch importer);
- ``report``: writes the HTML report;
- ``validate``: holds debatch against CellProfiler and focus QC against phenotypes;
- ``pipeline``: checks the workflow's config and gives each rule its params.

Subpackages are not imported here: import the module you need by its full name.
"""

__version__ = "0.1.0"

__all__ = [
    "settings",
    "core",
    "ingest",
    "illum",
    "segment",
    "crops",
    "features",
    "profiles",
    "evaluate",
    "demo",
    "cnn",
    "report",
    "validate",
    "pipeline",
]
