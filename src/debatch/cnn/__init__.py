"""The CNN: crops as input (data), the network (models), feature-statistic augmentations
(augment), what each training method adds (methods), training (train) and embedding (embed).

Everything here imports torch; the rest of debatch does not.
"""
