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

    The random draws are the same whatever the strengths, and every effect is its strength
    times a fixed draw, so zero strengths give gain 1, no offset, vignetting, extra blur,
    background or noise, gamma 1, no crosstalk, a round centred illumination, an isotropic
    achromatic blur, and density and cell size multipliers of 1.
    """
    demo = DEMO.merge(params)
    s = demo["batch"]
    rng = np.random.default_rng([demo["seed"], zlib.crc32(str(batch).encode())])
    n = len(CHANNELS)
    gain_z, offset_z = rng.standard_normal(n), rng.standard_normal(n)
    background_u = rng.uniform(0.5, 1.5, n)
    vignette_u, blur_u, noise_u = rng.uniform(0.5, 1.5, 3)
    centre = rng.uniform(-0.15, 0.15, 2) if s["vignetting"] > 0 else np.zeros(2)
    density = float(np.exp(s["density"] * rng.standard_normal()))
    # Drawn after the effects above, so those stay the same when these are switched on.
    gamma_z, crosstalk_u = rng.standard_normal(n), rng.uniform(0.5, 1.5, n)
    gradient_u, gradient_angle, ellipse_z = (
        rng.uniform(0.5, 1.5),
        rng.uniform(0, 2 * np.pi),
        rng.standard_normal(),
    )
    elongation_z, chromatic_u, size_z = (
        rng.standard_normal(),
        rng.uniform(0.5, 1.5),
        rng.standard_normal(),
    )
    extra = len(channels) - n  # further stains: their draws come last
    if extra > 0:
        gain_z, offset_z, background_u, gamma_z, crosstalk_u = (
            np.concatenate([draws, more])
            for draws, more in zip(
                (gain_z, offset_z, background_u, gamma_z, crosstalk_u),
                (
                    rng.standard_normal(extra),
                    rng.standard_normal(extra),
                    rng.uniform(0.5, 1.5, extra),
                    rng.standard_normal(extra),
                    rng.uniform(0.5, 1.5, extra),
                ),
            )
        )
    return {
        "batch": str(batch),
        "gain": {c: float(np.exp(s["gain"] * z)) for c, z in zip(channels, gain_z)},
        "offset": {c: float(s["offset"] * abs(z)) for c, z in zip(channels, offset_z)},
        "background": {c: float(s["background"] * u) for c, u in zip(channels, background_u)},
        "vignetting_amplitude": float(s["vignetting"] * vignette_u),
        # centre of the falloff relative to the image centre, in image sides (y, x)
        "vignetting_center": [float(v) for v in centre],
        "blur_sigma": float(s["blur"] * blur_u),
        "noise": float(s["noise"] * noise_u),
        "density": density,
        # cells in denser batches are smaller (area multiplier), and a batch's own size shift
        "cell_size": density**-0.5 * float(np.exp(s["size"] * size_z)),
        # detector response: stored = reference x (intensity / reference) ** gamma, per channel
        "gamma": {c: float(np.exp(s["gamma"] * z)) for c, z in zip(channels, gamma_z)},
        # fraction of the bluer neighbouring stain's signal that bleeds into a channel
        "crosstalk": {
            c: 0.0 if i == 0 else float(s["crosstalk"] * u)
            for i, (c, u) in enumerate(zip(channels, crosstalk_u))
        },
        # illumination shape: a linear gradient across the field (fraction, direction) and the
        # falloff's ellipticity (x axis stretched by this factor)
        "illumination_gradient": float(s["illumination_shape"] * gradient_u),
        "illumination_angle": float(gradient_angle) if s["illumination_shape"] > 0 else 0.0,
        "illumination_ellipse": float(np.exp(s["illumination_shape"] * ellipse_z)),
        # PSF: blur sigma y / x ratio, and extra blur per channel step towards the red
        "psf_elongation": float(np.exp(s["psf"] * elongation_z)),
        "psf_chromatic": float(s["psf"] * chromatic_u),
    }


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
