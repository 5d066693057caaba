"""The validation harness: debatch held against CellProfiler's own outputs (cellprofiler) and
focus QC against phenotypes on made-to-order sites (focus_qc). Used by the tests, the
benchmarks and the docs' figures, never by the workflow, so it sits above every stage it uses.
"""
