"""The demo screen's batch effects: what one imaging day or instrument does to every image.

Drawn deterministically from (seed, batch name), so any process recomputes the same batch; the
strengths come from ``demo.params.batch`` and 0 switches an effect off. Two kinds:

- effects a per-plate intensity standardisation removes (the same affine map for every pixel
  of a channel): channel gain and offset; and ones it roughly removes: background, noise;
- physics it cannot undo: a nonlinear detector response per channel (``gamma``), bleed-through
  of each stain into the next channel (``crosstalk``), an illumination pattern whose *shape*
  differs between batches (centre, ellipticity, a gradient: ``vignetting``,
  ``illumination_shape``), a point-spread function that differs per batch (extra blur,
  anisotropy and chromatic blur: ``blur``, ``psf``), and cell density and size (``density``,
  ``size``).
"""

from __future__ import annotations

import zlib

import numpy as np

from debatch.demo.design import CHANNELS
from debatch.settings import DEMO


def batch_effects(batch: str, params: dict, channels=CHANNELS) -> dict:
    """Technical effects of one batch, deterministic from (seed, crc32(batch name)).

    ``channels``: CHANNELS and any further stains after them (debatch.demo.rxrx1's sixth),
    whose per-channel effects are drawn after all the others, so the five channels' stay the
    same.

    The random draws are the same whatever the strengths (but for the vignetting centre:
    ``_draws``), and every effect is its strength times a fixed draw, so zero strengths give
    gain 1, no offset, vignetting, extra blur, background or noise, gamma 1, no crosstalk, a
    round centred illumination, an isotropic achromatic blur, and density and cell size
    multipliers of 1.
    """
    demo = DEMO.merge(params)
    s = demo["batch"]
    rng = np.random.default_rng([demo["seed"], zlib.crc32(str(batch).encode())])
    d = _draws(rng, len(channels), vignetting=s["vignetting"] > 0)
    density = float(np.exp(s["density"] * d["density"]))
    return {
        "batch": str(batch),
        "gain": {c: float(np.exp(s["gain"] * z)) for c, z in zip(channels, d["gain"])},
        "offset": {c: float(s["offset"] * abs(z)) for c, z in zip(channels, d["offset"])},
        "background": {c: float(s["background"] * u) for c, u in zip(channels, d["background"])},
        "vignetting_amplitude": float(s["vignetting"] * d["vignette"]),
        # centre of the falloff relative to the image centre, in image sides (y, x)
        "vignetting_center": [float(v) for v in d["centre"]],
        "blur_sigma": float(s["blur"] * d["blur"]),
        "noise": float(s["noise"] * d["noise"]),
        "density": density,
        # cells in denser batches are smaller (area multiplier), and a batch's own size shift
        "cell_size": density**-0.5 * float(np.exp(s["size"] * d["size"])),
        # detector response: stored = reference x (intensity / reference) ** gamma, per channel
        "gamma": {c: float(np.exp(s["gamma"] * z)) for c, z in zip(channels, d["gamma"])},
        # fraction of the bluer neighbouring stain's signal that bleeds into a channel
        "crosstalk": {
            c: 0.0 if i == 0 else float(s["crosstalk"] * u)
            for i, (c, u) in enumerate(zip(channels, d["crosstalk"]))
        },
        # illumination shape: a linear gradient across the field (fraction, direction) and the
        # falloff's ellipticity (x axis stretched by this factor)
        "illumination_gradient": float(s["illumination_shape"] * d["gradient"]),
        "illumination_angle": float(d["angle"]) if s["illumination_shape"] > 0 else 0.0,
        "illumination_ellipse": float(np.exp(s["illumination_shape"] * d["ellipse"])),
        # PSF: blur sigma y / x ratio, and extra blur per channel step towards the red
        "psf_elongation": float(np.exp(s["psf"] * d["elongation"])),
        "psf_chromatic": float(s["psf"] * d["chromatic"]),
    }


def _draws(rng: np.random.Generator, n_channels: int, vignetting: bool) -> dict:
    """A batch's fixed draws, in the order effects were added to the generator: a later effect
    draws after the earlier ones and further stains after everything, so adding a stain or
    switching on an effect added later leaves the earlier draws as they were. (The vignetting
    centre is drawn only when vignetting is on, so switching vignetting on moves every draw
    after it.)"""
    n = len(CHANNELS)
    gain, offset = rng.standard_normal(n), rng.standard_normal(n)
    background = rng.uniform(0.5, 1.5, n)
    vignette, blur, noise = rng.uniform(0.5, 1.5, 3)
    centre = rng.uniform(-0.15, 0.15, 2) if vignetting else np.zeros(2)
    density = rng.standard_normal()
    gamma, crosstalk = rng.standard_normal(n), rng.uniform(0.5, 1.5, n)
    gradient, angle, ellipse = (
        rng.uniform(0.5, 1.5),
        rng.uniform(0, 2 * np.pi),
        rng.standard_normal(),
    )
    elongation, chromatic, size = (
        rng.standard_normal(),
        rng.uniform(0.5, 1.5),
        rng.standard_normal(),
    )
    extra = n_channels - n  # further stains
    if extra > 0:
        gain = np.concatenate([gain, rng.standard_normal(extra)])
        offset = np.concatenate([offset, rng.standard_normal(extra)])
        background = np.concatenate([background, rng.uniform(0.5, 1.5, extra)])
        gamma = np.concatenate([gamma, rng.standard_normal(extra)])
        crosstalk = np.concatenate([crosstalk, rng.uniform(0.5, 1.5, extra)])
    return {
        "gain": gain, "offset": offset, "background": background, "vignette": vignette,
        "blur": blur, "noise": noise, "centre": centre, "density": density, "gamma": gamma,
        "crosstalk": crosstalk, "gradient": gradient, "angle": angle, "ellipse": ellipse,
        "elongation": elongation, "chromatic": chromatic, "size": size,
    }  # fmt: skip


def defocus(effects: dict, sigma: float) -> dict:
    """A batch's effects for one site imaged out of focus: ``sigma`` px more blur, added in
    quadrature to the batch's own."""
    return {**effects, "blur_sigma": float(np.hypot(effects["blur_sigma"], sigma))}


def vignetting_field(effects: dict, size: int) -> np.ndarray:
    """Multiplicative illumination field of a batch: 1 - amplitude * r^2 (r = 1 at the corners,
    x stretched by the ellipticity) times 1 + a linear gradient across the field."""
    centre_y, centre_x = [(size - 1) / 2 + v * size for v in effects["vignetting_center"]]
    y, x = np.ogrid[:size, :size]
    ellipse = effects.get("illumination_ellipse", 1.0)
    r2 = ((y - centre_y) ** 2 + ((x - centre_x) / ellipse) ** 2) / (2 * (size / 2) ** 2)
    field = 1.0 - effects["vignetting_amplitude"] * r2
    gradient = effects.get("illumination_gradient", 0.0)
    if gradient:
        angle = effects["illumination_angle"]
        position = np.cos(angle) * (x / (size - 1) - 0.5) + np.sin(angle) * (y / (size - 1) - 0.5)
        field = field * (1.0 + gradient * position)
    return np.clip(field, 0.05, None).astype(np.float32)
