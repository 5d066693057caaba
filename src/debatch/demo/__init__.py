"""The embedded demo screen: a synthetic Cell Painting screen with known ground truth.

design (treatments, platemap) -> batches (technical effects) -> render (one site) -> plate
(files on disk, in a real instrument's naming). Settings: ``demo.params`` (debatch.settings).
"""
