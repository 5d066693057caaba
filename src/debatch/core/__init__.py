"""Helpers every stage shares: atomic files, images, wells, logging, threads, plotting, devices."""
