"""Illumination correction: one smooth mean-1 function per plate and channel (estimate), and
its QC picture (plot)."""
