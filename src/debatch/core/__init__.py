"""Helpers every stage shares: atomic files, images, wells, logging, threads, plotting, devices,
provenance, and shards (a plate's sites split into jobs and gathered back)."""
