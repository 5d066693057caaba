"""The validation harness: debatch held against references, for the tests, the benchmarks
and the docs' figures, never the workflow (so it sits above every stage it uses).

- ``cellprofiler``: compares debatch with CellProfiler's own outputs (``compare_objects``);
- ``focus_qc``: measures how focus QC separates defocus from phenotypes (``focus_rates``).
"""

__all__ = ["cellprofiler", "focus_qc"]
