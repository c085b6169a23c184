"""Low-poly car meshes for the Cars3D twin (and the "car"/"truck" toys of the NORB twin).

A car is a lower body, a cabin with dark windows, four wheels with light hubs and small
head/tail lights. Each object id draws its proportions, body style and paint from its own
``RandomState``, so object ``k`` is the same car on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lvae.data.mesh import Mesh, box, cylinder, frustum, merge

STYLES = ("sedan", "hatchback", "suv", "van", "sports", "pickup", "wagon")

# realistic paint colours (RGB in [0, 1]) with rough popularity weights
PAINTS = np.array(
    [
        [0.92, 0.92, 0.93], [0.72, 0.73, 0.75], [0.12, 0.12, 0.13], [0.35, 0.36, 0.38],
        [0.70, 0.08, 0.08], [0.42, 0.05, 0.07], [0.10, 0.25, 0.62], [0.08, 0.12, 0.30],
        [0.90, 0.72, 0.08], [0.16, 0.42, 0.18], [0.45, 0.32, 0.20], [0.88, 0.42, 0.08],
        [0.80, 0.74, 0.60], [0.55, 0.10, 0.45], [0.25, 0.55, 0.80],
    ]
)
PAINT_WEIGHTS = np.array([14, 14, 12, 8, 9, 5, 7, 4, 4, 4, 3, 2, 3, 2, 3], dtype=np.float64)
WINDOW = (0.10, 0.11, 0.13)
TYRE = (0.07, 0.07, 0.07)
HUB = (0.62, 0.62, 0.64)


@dataclass(frozen=True)
class CarParams:
    """Proportions of one car (world units, roughly metres; the car points along +x)."""

    style: str
    length: float
    width: float
    clearance: float
    body_height: float
    cabin_start: float  # rear end of the cabin, fraction of length from the back
    cabin_end: float  # front end of the cabin
    cabin_height: float
    roof_taper: float  # top length of the cabin relative to its bottom
    wheel_radius: float
    paint: tuple[float, float, float]


def random_car(rng: np.random.RandomState) -> CarParams:
    """Draw one car's proportions and paint."""
    style = STYLES[rng.randint(len(STYLES))]
    length = rng.uniform(3.9, 4.8)
    width = rng.uniform(1.65, 1.9)
    body_height = rng.uniform(0.55, 0.7)
    cabin = {
        "sedan": (0.22, 0.70, 0.50, 0.62), "hatchback": (0.06, 0.66, 0.55, 0.72),
        "suv": (0.06, 0.70, 0.68, 0.80), "van": (0.03, 0.88, 0.85, 0.80),
        "sports": (0.28, 0.66, 0.38, 0.50), "pickup": (0.40, 0.72, 0.62, 0.78),
        "wagon": (0.04, 0.70, 0.55, 0.82),
    }[style]
    start, end, height, taper = (c * rng.uniform(0.93, 1.07) for c in cabin)
    if style in ("suv", "van", "pickup"):
        body_height *= 1.25
    paint = PAINTS[rng.choice(len(PAINTS), p=PAINT_WEIGHTS / PAINT_WEIGHTS.sum())]
    paint = np.clip(paint * rng.uniform(0.9, 1.08), 0.0, 1.0)
    return CarParams(
        style=style, length=length, width=width, clearance=rng.uniform(0.18, 0.3),
        body_height=body_height, cabin_start=start, cabin_end=min(end, 0.95),
        cabin_height=height, roof_taper=taper, wheel_radius=rng.uniform(0.3, 0.38),
        paint=tuple(float(c) for c in paint),
    )


def car_mesh(p: CarParams, window=WINDOW, tyre=TYRE, hub=HUB) -> Mesh:
    """The mesh of car ``p``, centred on the origin, wheels on ``y = 0``."""
    L, W = p.length, p.width
    paint = np.asarray(p.paint)
    parts = [
        frustum((0.0, p.clearance, 0.0), (L, W), (L * 0.96, W * 0.94), p.body_height, paint)
    ]
    cab_len = (p.cabin_end - p.cabin_start) * L
    cab_mid = -L / 2 + (p.cabin_start + p.cabin_end) / 2 * L
    # cabin faces: bottom, roof (paint), then -z, +x, +z, -x sides: all windows
    cab_colors = np.array([paint, paint, window, window, window, window])
    top = p.body_height + p.clearance
    parts.append(
        frustum(
            (cab_mid, top, 0.0), (cab_len, W * 0.9), (cab_len * p.roof_taper, W * 0.76),
            p.cabin_height, cab_colors, shift=(-0.08 * cab_len, 0.0),
        )
    )
    if p.style == "pickup":  # an open bed behind the cabin: a darker floor
        bed = L * (p.cabin_start - 0.04)
        parts.append(box((-L / 2 + bed / 2 + 0.05, top, 0.0), (bed, 0.02, W * 0.84),
                         paint * 0.55))
    r = p.wheel_radius
    for x in (-0.32 * L, 0.32 * L):
        for z in (-W / 2 + 0.12, W / 2 - 0.12):
            parts.append(cylinder((x, r, z), r, 0.26, tyre, sides=12, axis="z", cap_color=hub))
    light_y = p.clearance + p.body_height * 0.65
    for z in (-W * 0.33, W * 0.33):
        parts.append(box((L / 2 - 0.01, light_y, z), (0.05, 0.12, 0.32), (0.95, 0.95, 0.85)))
        parts.append(box((-L / 2 + 0.01, light_y, z), (0.05, 0.12, 0.3), (0.75, 0.05, 0.05)))
    return merge(parts)
