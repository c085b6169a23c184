"""A small numpy ray-caster for the 3D Shapes twin: one room, one object, one camera.

3D Shapes' geometry depends only on (scale, shape, orientation): 8 x 4 x 15 = 480
configurations. The three hues only recolour whole regions (floor, walls, object), so
rendering a configuration once gives everything needed to compose its 1,000 coloured
variants: a per-pixel *region label* (sky, wall, floor, object), a per-pixel *shade*
(lighting, shadow and wall texture, multiplied onto the region's hue) and a white
specular term on the object. Edges are hard (one ray through each pixel centre), as in
the real images, so a hue factor changes exactly its own region's pixels.

Scene (world units, y up, object standing on the floor at the origin):

- floor ``y = 0``; back wall ``z = BACK_WALL_Z``; side walls ``x = +-SIDE_WALL_X``, all
  ``WALL_HEIGHT`` high; above them the constant sky colour of the real images.
- the camera orbits the object about the vertical axis by the orientation angle, as the
  real camera does (room corners slide sideways, a cube shows other faces).
- one directional light from the front-left and above; a soft shadow is cast on the floor
  by averaging several jittered shadow rays.

The numbers were tuned by eye and by measurement against real 64x64 images: wall top near
row 17, wall/floor edge near row 41, object base near rows 52-57 and centred at x ~31.5.
"""

from __future__ import annotations

import numpy as np

REGION_SKY, REGION_WALL, REGION_FLOOR, REGION_OBJECT = 0, 1, 2, 3
SKY_RGB = np.array([153, 226, 249], dtype=np.float32) / 255.0

SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")

BACK_WALL_Z = 5.76
SIDE_WALL_X = 5.0
WALL_HEIGHT = 2.18
CAMERA_DISTANCE = 5.0
CAMERA_HEIGHT = 1.15
TARGET_HEIGHT = 1.0
FOCAL_64 = 118.6  # focal length in pixels at 64x64 (scales with the resolution)
LIGHT_DIR = np.array([-0.75, 1.5, 0.2])  # towards the shadow-casting light: left, high above
# the object is shaded by a front-left key light instead: it keeps lit faces near value 1
# as in the real images while the shadow still falls below-right where it is visible
KEY_LIGHT_DIR = np.array([-0.6, 0.8, -1.0])
SHADOW_SAMPLES = 24
SHADOW_SPREAD = 0.15  # cone half-width of the light directions, soft shadow edges

# object half-sizes at scale 1 (the scale factor multiplies all of them)
CUBE_HALF = 0.42
CYLINDER_RADIUS, CYLINDER_HEIGHT = 0.42, 0.85
SPHERE_RADIUS = 0.55
CAPSULE_RADIUS, CAPSULE_HEIGHT = 0.38, 1.55

_INF = np.float64(np.inf)


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _hit_sphere(o, d, c, r):
    """Nearest positive ray parameter and normal for a sphere (inf where missed)."""
    oc = o - c
    b = np.einsum("...i,...i->...", oc, d)
    cc = np.einsum("...i,...i->...", oc, oc) - r * r
    disc = b * b - cc
    with np.errstate(invalid="ignore"):
        s = np.sqrt(disc)
    t = -b - s
    t = np.where((disc >= 0) & (t > 1e-6), t, _INF)
    n = (o + np.where(np.isfinite(t), t, 0.0)[..., None] * d - c) / r
    return t, n


def _hit_cylinder_side(o, d, r, y0, y1):
    """Vertical cylinder of radius r about the y axis, open, between heights y0 and y1."""
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = o[..., 0] * d[..., 0] + o[..., 2] * d[..., 2]
    c = o[..., 0] ** 2 + o[..., 2] ** 2 - r * r
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / a
    y = o[..., 1] + t * d[..., 1]
    t = np.where((disc >= 0) & (a > 1e-12) & (t > 1e-6) & (y >= y0) & (y <= y1), t, _INF)
    p = o + np.where(np.isfinite(t), t, 0)[..., None] * d
    n = np.stack([p[..., 0], np.zeros_like(t), p[..., 2]], axis=-1) / r
    return t, n


def _hit_disc(o, d, r, y, up):
    """Horizontal disc of radius r at height y, facing up (``up=True``) or down."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (y - o[..., 1]) / d[..., 1]
    p = o + np.where(np.isfinite(t), t, 0)[..., None] * d
    inside = p[..., 0] ** 2 + p[..., 2] ** 2 <= r * r
    facing = d[..., 1] < 0 if up else d[..., 1] > 0
    t = np.where(inside & facing & (t > 1e-6), t, _INF)
    n = np.zeros_like(d)
    n[..., 1] = 1.0 if up else -1.0
    return t, n


def _hit_box(o, d, half, height):
    """Axis-aligned box [-half, half] x [0, height] x [-half, half] (slab method)."""
    lo = np.array([-half, 0.0, -half])
    hi = np.array([half, height, half])
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t0 = (lo - o) * inv
        t1 = (hi - o) * inv
    tmin = np.nan_to_num(np.minimum(t0, t1), nan=-_INF)
    tmax = np.nan_to_num(np.maximum(t0, t1), nan=_INF)
    t_enter = tmin.max(axis=-1)
    t_exit = tmax.min(axis=-1)
    t = np.where((t_enter <= t_exit) & (t_enter > 1e-6), t_enter, _INF)
    axis = tmin.argmax(axis=-1)
    n = np.zeros_like(d)
    sign = -np.sign(np.take_along_axis(d, axis[..., None], axis=-1)[..., 0])
    np.put_along_axis(n, axis[..., None], sign[..., None], axis=-1)
    return t, n


def _nearest(*hits):
    ts = np.stack([h[0] for h in hits])
    k = ts.argmin(axis=0)
    t = np.take_along_axis(ts, k[None], axis=0)[0]
    ns = np.stack([h[1] for h in hits])
    n = np.take_along_axis(ns, k[None, ..., None], axis=0)[0]
    return t, n


def hit_object(o: np.ndarray, d: np.ndarray, shape: int, scale: float):
    """Ray parameter and outward normal of the nearest hit on the object (inf if none)."""
    if shape == 0:
        h = CUBE_HALF * scale
        return _hit_box(o, d, h, 2 * h)
    if shape == 1:
        r, hgt = CYLINDER_RADIUS * scale, CYLINDER_HEIGHT * scale
        return _nearest(
            _hit_cylinder_side(o, d, r, 0.0, hgt), _hit_disc(o, d, r, hgt, up=True)
        )
    if shape == 2:
        r = SPHERE_RADIUS * scale
        return _hit_sphere(o, d, np.array([0.0, r, 0.0]), r)
    if shape == 3:
        r, hgt = CAPSULE_RADIUS * scale, CAPSULE_HEIGHT * scale
        return _nearest(
            _hit_cylinder_side(o, d, r, r, hgt - r),
            _hit_sphere(o, d, np.array([0.0, r, 0.0]), r),
            _hit_sphere(o, d, np.array([0.0, hgt - r, 0.0]), r),
        )
    raise ValueError(f"shape must be 0..3 ({', '.join(SHAPE_NAMES)}), got {shape}")


def camera_rays(orientation_deg: float, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Origin ``(3,)`` and unit directions ``(H, W, 3)`` through the pixel centres."""
    a = np.deg2rad(orientation_deg)
    eye = np.array(
        [CAMERA_DISTANCE * np.sin(a), CAMERA_HEIGHT, -CAMERA_DISTANCE * np.cos(a)]
    )
    forward = _normalise(np.array([0.0, TARGET_HEIGHT, 0.0]) - eye)
    right = _normalise(np.cross(np.array([0.0, 1.0, 0.0]), forward))
    up = np.cross(forward, right)
    f = FOCAL_64 * resolution / 64.0
    c = (resolution - 1) / 2.0
    u = (np.arange(resolution) - c) / f
    v = (c - np.arange(resolution)) / f
    d = forward + u[None, :, None] * right + v[:, None, None] * up
    return eye, _normalise(d)


def _wall_texture(p: np.ndarray, on_side: np.ndarray) -> np.ndarray:
    """Faint hexagonal tiling (about 4% brightness), like the real walls."""
    s = np.where(on_side, p[..., 2], p[..., 0])
    y = p[..., 1]
    k = 2.0 * np.pi / 0.9
    g = (
        np.cos(k * s)
        + np.cos(k * (0.5 * s + 0.866 * y))
        + np.cos(k * (-0.5 * s + 0.866 * y))
    )
    return 1.0 - 0.02 * (g + 1.5) / 4.5


def _shadow(p: np.ndarray, shape: int, scale: float) -> np.ndarray:
    """Fraction of jittered light directions blocked by the object, per point."""
    rng = np.random.RandomState(0)  # fixed jitter: renders are deterministic
    base = _normalise(LIGHT_DIR)
    blocked = np.zeros(p.shape[:-1])
    for _ in range(SHADOW_SAMPLES):
        ld = _normalise(base + SHADOW_SPREAD * rng.standard_normal(3))
        t, _ = hit_object(p, np.broadcast_to(ld, p.shape), shape, scale)
        blocked += np.isfinite(t)
    return blocked / SHADOW_SAMPLES


def render_config(
    scale: float, shape: int, orientation_deg: float, resolution: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one geometry configuration.

    Returns ``(label, shade, specular)``: ``uint8 (H, W)`` region ids, ``float32 (H, W)``
    brightness multiplying the region's hue, and ``float32 (H, W)`` white light added on
    the object. A pixel's colour is ``shade * rgb(hue of its region) + specular`` (the
    sky ignores both and takes the constant sky colour).
    """
    eye, d = camera_rays(orientation_deg, resolution)
    o = np.broadcast_to(eye, d.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[..., 1] < 0, -eye[1] / d[..., 1], _INF)
        t_back = np.where(d[..., 2] > 0, (BACK_WALL_Z - eye[2]) / d[..., 2], _INF)
        t_side = np.where(
            d[..., 0] != 0, (np.sign(d[..., 0]) * SIDE_WALL_X - eye[0]) / d[..., 0], _INF
        )
    t_wall = np.minimum(t_back, t_side)
    on_side = t_side < t_back
    p_wall = eye + np.where(np.isfinite(t_wall), t_wall, 0)[..., None] * d
    wall_hit = np.isfinite(t_wall) & (p_wall[..., 1] <= WALL_HEIGHT)
    t_wall = np.where(wall_hit, t_wall, _INF)
    t_obj, n_obj = hit_object(o, d, shape, scale)

    ts = np.stack([np.full(t_obj.shape, 1e30), t_wall, t_floor, t_obj])
    label = ts.argmin(axis=0).astype(np.uint8)
    shade = np.ones(label.shape)
    spec = np.zeros(label.shape)

    # walls: the back wall fully lit, side walls darker (light grazes them)
    wall_shade = np.where(on_side, 0.68, 1.0) * _wall_texture(p_wall, on_side)
    shade = np.where(label == REGION_WALL, wall_shade, shade)

    # floor: slightly darker far away, shadowed behind-right of the object
    floor = label == REGION_FLOOR
    p_floor = eye + np.where(floor, t_floor, 0)[..., None] * d
    dist = np.hypot(p_floor[..., 0], p_floor[..., 2] - eye[2])
    floor_shade = np.clip(1.04 - 0.012 * dist, 0.88, 1.0)
    occl = np.zeros(label.shape)
    occl[floor] = _shadow(p_floor[floor], shape, scale)
    shade = np.where(floor, floor_shade * (1.0 - 0.7 * occl), shade)

    # object: ambient + Lambert from the light, a little specular highlight
    key = _normalise(KEY_LIGHT_DIR)
    lam = np.clip(np.einsum("...i,i->...", n_obj, key), 0.0, 1.0)
    obj_shade = 0.62 + 0.4 * lam
    half = _normalise(key[None, None, :] - d)
    spec_obj = 0.18 * np.clip(np.einsum("...i,...i->...", n_obj, half), 0, 1) ** 24
    obj = label == REGION_OBJECT
    shade = np.where(obj, np.minimum(obj_shade, 1.0), shade)
    spec = np.where(obj, spec_obj, 0.0)
    return label, shade.astype(np.float32), spec.astype(np.float32)
