"""The demo generator's fields that benchmarks time and measure (their generator settings, in
one place): the demo's own 256 px field and a dense 1080 px field of about CellProfiler's
per-field density, which features.py and site_cost.py both use. Imports nothing heavy: a
benchmark's spawned workers import it again."""

DEMO_FIELD = {"image_size": 256, "cells_per_site": 45, "nucleus_radius": 6.0, "cell_radius": 13.0}
DENSE_FIELD = {
    "image_size": 1080,
    "cells_per_site": 250,
    "nucleus_radius": 11.0,
    "cell_radius": 26.0,
}


def write_field(field: dict, folder) -> None:
    """One site of ``field`` as a one-well demo plate (well A01, Phenix naming) in ``folder``,
    with the generator's truth beside it."""
    from debatch.demo.plate import generate_plate  # here: importing this module stays light

    one_site = {"rows": 1, "cols": 1, "sites": 1, "n_treatments": 0, "n_inactive": 0}
    generate_plate(folder, "P1", "b1", {**one_site, "replicates": 1, **field})
