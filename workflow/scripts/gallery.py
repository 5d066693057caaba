"""Snakemake script: the report's cell gallery (debatch.report.gallery) from every plate's crops."""

import numpy as np
import pandas as pd

from debatch.core.logs import setup_logging
from debatch.crops.store import open_crops
from debatch.report.gallery import pick_cells, plot_gallery

log = setup_logging(snakemake.log[0])
crops, tables = {}, []
for npy, parquet in zip(snakemake.input.crops, snakemake.input.tables):
    array, table = open_crops(npy, parquet)
    crops[table["Metadata_Plate"].iloc[0]] = array
    tables.append(table.assign(crop=np.arange(len(table))))
picked = pick_cells(
    pd.concat(tables, ignore_index=True), snakemake.params.cells, snakemake.params.seed
)
shown = np.stack(
    [crops[plate][row] for plate, row in zip(picked["Metadata_Plate"], picked["crop"])]
)
plot_gallery(picked, shown, snakemake.params.channels, snakemake.output[0])
log.info("gallery: %d cells of %d treatments", len(picked), picked["Metadata_Treatment"].nunique())
