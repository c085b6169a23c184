"""Grey toy meshes for the SmallNORB twin: 5 categories x 10 instances.

NORB's categories are four-legged animals, human figures, airplanes, trucks and cars;
its instances are different toys of a category. Each builder draws one toy's proportions
from a ``RandomState`` seeded by (category, instance), so toys are reproducible. Toys are
matte grey/white, about one world unit long, standing on ``y = 0``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lvae.data.car_models import car_mesh, random_car
from lvae.data.mesh import Mesh, box, cylinder, ellipsoid, frustum, merge, rot_y, rot_z

CATEGORIES = ("animal", "human", "airplane", "truck", "car")


def _grey(rng: np.random.RandomState, lo: float = 0.8, hi: float = 0.95) -> np.ndarray:
    g = rng.uniform(lo, hi)
    return np.array([g, g, g])


def animal(rng: np.random.RandomState) -> Mesh:
    """A four-legged animal: body, head (sometimes on a long neck), legs, tail."""
    g = _grey(rng)
    rx, ry, rz = rng.uniform(0.38, 0.55), rng.uniform(0.14, 0.22), rng.uniform(0.13, 0.2)
    leg = rng.uniform(0.12, 0.32)
    body_y = leg + ry * 0.8
    parts = [ellipsoid((0.0, body_y, 0.0), (rx, ry, rz), g)]
    neck = rng.uniform(0.0, 0.35) if rng.rand() < 0.4 else 0.0
    hx, hy = rx * 0.95 + neck * 0.4, body_y + ry * 0.5 + neck
    if neck > 0:
        parts.append(box((rx * 0.85, body_y, 0.0), (0.1, neck + ry * 0.5, 0.1), g))
    hr = rng.uniform(0.09, 0.16)
    parts.append(ellipsoid((hx, hy, 0.0), (hr * 1.3, hr, hr * 0.9), g))
    for sx in (-0.62, 0.62):
        for sz in (-0.55, 0.55):
            parts.append(box((sx * rx, 0.0, sz * rz), (0.08, body_y, 0.08), g * 0.97))
    parts.append(box((-rx * 1.05, body_y, 0.0), (0.22, 0.04, 0.04), g))
    return merge(parts).transformed(rot_y(rng.uniform(-10, 10)))


def human(rng: np.random.RandomState) -> Mesh:
    """A standing figure: legs, torso, head, arms; some hold a long weapon."""
    g = _grey(rng)
    h = rng.uniform(0.85, 1.1)
    leg, torso = 0.45 * h, 0.35 * h
    parts = [box((0.0, 0.0, z), (0.11, leg, 0.1), g) for z in (-0.07, 0.07)]
    parts.append(frustum((0.0, leg, 0.0), (0.14, 0.28), (0.16, 0.36), torso, g))
    parts.append(ellipsoid((0.0, leg + torso + 0.1 * h, 0.0), (0.08, 0.1, 0.08), g))
    for z, sign in ((-0.21, -1), (0.21, 1)):
        angle = sign * rng.uniform(10, 80)
        arm = box((0.0, -0.3 * h, 0.0), (0.08, 0.3 * h, 0.08), g).transformed(rot_z(angle))
        parts.append(arm.transformed(offset=(0.0, leg + torso - 0.03, z)))
    if rng.rand() < 0.5:
        parts.append(box((0.05, leg + torso * 0.8, 0.0), (0.9 * h, 0.06, 0.06), g * 0.9)
                     .transformed(rot_y(rng.uniform(-40, 40))))
    # many NORB figures crouch or lean: tilt the whole figure a little
    return merge(parts).transformed(rot_z(rng.uniform(-15, 15)))


def airplane(rng: np.random.RandomState) -> Mesh:
    """Fuselage, swept wings, tail fin and stabiliser, resting on the table."""
    g = _grey(rng, 0.85, 0.97)
    length = rng.uniform(1.0, 1.3)
    r = rng.uniform(0.07, 0.1)
    parts = [ellipsoid((0.0, r + 0.03, 0.0), (length / 2, r, r), g, slices=8)]
    span, chord = rng.uniform(0.8, 1.3), rng.uniform(0.18, 0.32)
    sweep = rng.uniform(0.0, 0.25)
    wing_x = rng.uniform(-0.05, 0.12)
    parts.append(frustum((wing_x, r, 0.0), (chord, span), (chord * 0.5, span), 0.025, g,
                         shift=(-sweep, 0.0)))
    parts.append(frustum((-length * 0.42, r, 0.0), (0.14, 0.35), (0.08, 0.35), 0.02, g))
    parts.append(frustum((-length * 0.42, r * 1.5, 0.0), (0.18, 0.03), (0.07, 0.03),
                         rng.uniform(0.15, 0.25), g, shift=(-0.06, 0.0)))
    return merge(parts)


def truck(rng: np.random.RandomState) -> Mesh:
    """Cab + cargo box (or tank) on six wheels."""
    g = _grey(rng)
    length, width = rng.uniform(1.0, 1.35), rng.uniform(0.34, 0.44)
    wr = rng.uniform(0.08, 0.11)
    cab = rng.uniform(0.22, 0.3) * length
    clear = wr * 0.9
    parts = [box((length / 2 - cab / 2, clear, 0.0), (cab, rng.uniform(0.3, 0.4), width), g)]
    cargo = length - cab - 0.03
    cx = -length / 2 + cargo / 2
    if rng.rand() < 0.3:
        parts.append(cylinder((cx, clear + width / 2, 0.0), width / 2, cargo, g, axis="x"))
    else:
        parts.append(box((cx, clear, 0.0), (cargo, rng.uniform(0.3, 0.45), width), g * 0.96))
    for x in (length / 2 - cab / 2, -length * 0.1, -length * 0.35):
        for z in (-width / 2, width / 2):
            parts.append(cylinder((x, wr, z), wr, 0.07, g * 0.5, sides=8, axis="z"))
    return merge(parts)


def car(rng: np.random.RandomState) -> Mesh:
    """A toy car: the Cars3D car model, scaled to about one unit and painted grey."""
    params = random_car(rng)
    g = _grey(rng)
    m = car_mesh(replace(params, paint=tuple(g)), window=g * 0.6, tyre=g * 0.5, hub=g)
    grey = np.repeat(m.colors.mean(axis=1, keepdims=True), 3, axis=1)  # lights turn grey
    return Mesh(m.vertices * (1.15 / params.length), m.faces, grey)


BUILDERS = (animal, human, airplane, truck, car)


def toy(category: int, instance: int) -> Mesh:
    """The mesh of toy ``instance`` of ``category`` (0 animal ... 4 car)."""
    rng = np.random.RandomState(7919 * (category + 1) + instance)
    return BUILDERS[category](rng)
