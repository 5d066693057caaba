"""Ingest: a plate's image files and platemap turned into its manifest."""
