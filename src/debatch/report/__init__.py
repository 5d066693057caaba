"""The report: figures of the diagnostics (figures) and the self-contained HTML page (html)."""
