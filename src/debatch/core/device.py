"""Choosing the torch device for a GPU-capable step (train, embed, cellpose): one rule for all.

torch is imported only when a device is asked for, so the workflow's start-up never pays for it.
"""

from __future__ import annotations

from debatch.settings import DEVICES, check_choice


def resolve_device(choice: str, key: str = "device"):
    """'auto' -> cuda when torch sees a GPU, else cpu; 'cuda' without one is an error naming
    ``key`` (the config key the choice came from)."""
    import torch

    check_choice(key, choice, DEVICES)
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{key} is cuda but torch sees no GPU")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def amp_settings(device, amp: bool):
    """(autocast enabled, dtype): bf16 where the GPU supports it, else fp16; never on CPU."""
    import torch

    if device.type != "cuda" or not amp:
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
