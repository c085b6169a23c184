"""Flat-shaded polygon meshes and a painter's-algorithm rasteriser on top of PIL.

The Cars3D and SmallNORB twins draw toy-like objects (cars, animals, planes, ...) built
from a few convex primitives. PIL's C polygon filler draws a few hundred faces in well
under a millisecond, which makes per-image rendering cheap enough to do lazily. Edges are
hard (no antialiasing), like the real Cars3D renders; the datasets then resize with
Lanczos, as the real loaders do.

Conventions: world y is up and the object stands on the ground plane ``y = 0`` around
the origin. The camera is orthographic, turned by ``azimuth`` about the vertical axis
and tilted down by ``elevation`` (both degrees); faces are convex polygons listed
counter-clockwise seen from outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


@dataclass
class Mesh:
    """Vertices ``(V, 3)``, convex faces (vertex index tuples) and one albedo per face."""

    vertices: np.ndarray
    faces: list[tuple[int, ...]]
    colors: np.ndarray  # (F, 3) albedo in [0, 1]

    def transformed(self, rotation: np.ndarray | None = None, offset=(0.0, 0.0, 0.0)) -> Mesh:
        v = self.vertices if rotation is None else self.vertices @ np.asarray(rotation).T
        return Mesh(v + np.asarray(offset, dtype=np.float64), self.faces, self.colors)


def merge(meshes: list[Mesh]) -> Mesh:
    """One mesh holding all faces of ``meshes`` (indices shifted)."""
    verts, faces, colors, base = [], [], [], 0
    for m in meshes:
        verts.append(m.vertices)
        faces += [tuple(i + base for i in f) for f in m.faces]
        colors.append(m.colors)
        base += len(m.vertices)
    return Mesh(np.concatenate(verts), faces, np.concatenate(colors))


def rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _colors(color, n: int) -> np.ndarray:
    c = np.asarray(color, dtype=np.float64)
    return np.broadcast_to(c if c.ndim == 2 else c[None, :], (n, 3)).copy()


def frustum(center, bottom, top, height: float, color, shift=(0.0, 0.0)) -> Mesh:
    """A box whose top face (``top`` = (dx, dz) sizes) may be smaller than its bottom.

    ``center`` is the centre of the bottom face; ``shift`` moves the top face in x/z
    (a slanted windscreen, a sloping hood). ``color`` is one RGB or six, in the face
    order bottom, top, -z, +x, +z, -x.
    """
    (bx, bz), (tx, tz), (sx, sz) = bottom, top, shift
    cx, cy, cz = center
    v = np.array(
        [
            [-bx / 2, 0, -bz / 2], [bx / 2, 0, -bz / 2], [bx / 2, 0, bz / 2], [-bx / 2, 0, bz / 2],
            [sx - tx / 2, height, sz - tz / 2], [sx + tx / 2, height, sz - tz / 2],
            [sx + tx / 2, height, sz + tz / 2], [sx - tx / 2, height, sz + tz / 2],
        ],
        dtype=np.float64,
    ) + np.array([cx, cy, cz])
    faces = [(0, 1, 2, 3), (4, 7, 6, 5), (0, 4, 5, 1), (1, 5, 6, 2), (2, 6, 7, 3), (3, 7, 4, 0)]
    return Mesh(v, faces, _colors(color, 6))


def box(center, size, color) -> Mesh:
    """Axis-aligned box with the given centre of its bottom face and (dx, dy, dz) size."""
    dx, dy, dz = size
    return frustum(center, (dx, dz), (dx, dz), dy, color)


def cylinder(center, radius: float, length: float, color, sides: int = 10, axis: str = "z",
             cap_color=None) -> Mesh:
    """Closed prism approximating a cylinder around ``center`` along the x, y or z axis."""
    a = np.linspace(0.0, 2 * np.pi, sides, endpoint=False)
    ring = np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)
    v0 = np.column_stack([ring, np.full(sides, -length / 2)])
    v1 = np.column_stack([ring, np.full(sides, length / 2)])
    v = np.concatenate([v0, v1])  # built along z, then permuted
    perm = {"z": [0, 1, 2], "x": [2, 1, 0], "y": [0, 2, 1]}[axis]
    v = v[:, perm]
    if axis == "y":
        v[:, 2] *= -1  # keep the winding outward after the axis swap
    v = v + np.asarray(center, dtype=np.float64)
    faces = [(i, (i + 1) % sides, sides + (i + 1) % sides, sides + i) for i in range(sides)]
    faces += [tuple(range(sides - 1, -1, -1)), tuple(range(sides, 2 * sides))]
    if axis == "x":
        faces = [tuple(reversed(f)) for f in faces]
    colors = _colors(color, sides + 2)
    if cap_color is not None:
        colors[-2:] = cap_color
    return Mesh(v, faces, colors)


def ellipsoid(center, radii, color, stacks: int = 6, slices: int = 10) -> Mesh:
    """Low-poly ellipsoid (latitude/longitude quads)."""
    lat = np.linspace(-np.pi / 2, np.pi / 2, stacks + 1)
    lon = np.linspace(0.0, 2 * np.pi, slices, endpoint=False)
    verts = [[0.0, -1.0, 0.0]]
    for t in lat[1:-1]:
        verts += [[np.cos(t) * np.cos(p), np.sin(t), np.cos(t) * np.sin(p)] for p in lon]
    verts.append([0.0, 1.0, 0.0])
    v = np.asarray(verts) * np.asarray(radii) + np.asarray(center, dtype=np.float64)
    top = len(verts) - 1

    def ring(k: int, j: int) -> int:
        return 1 + k * slices + j % slices

    faces = [(0, ring(0, j), ring(0, j + 1)) for j in range(slices)]
    for k in range(stacks - 2):
        faces += [
            (ring(k, j), ring(k + 1, j), ring(k + 1, j + 1), ring(k, j + 1)) for j in range(slices)
        ]
    faces += [(ring(stacks - 2, j + 1), ring(stacks - 2, j), top) for j in range(slices)]
    return Mesh(v, faces, _colors(color, len(faces)))


@dataclass(frozen=True)
class View:
    """Orthographic camera: degrees, pixels per world unit, image size, centre offset."""

    azimuth: float
    elevation: float
    scale: float
    size: int
    center: tuple[float, float] = (0.0, 0.0)  # world point (x-right, up) drawn mid-image

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, up, forward) in object coordinates (the object turns, not the world)."""
        e = np.deg2rad(self.elevation)
        r = rot_y(self.azimuth)
        right = r.T @ np.array([1.0, 0.0, 0.0])
        up = r.T @ np.array([0.0, np.cos(e), np.sin(e)])
        forward = r.T @ np.array([0.0, -np.sin(e), np.cos(e)])
        return right, up, forward

    def project(self, points: np.ndarray) -> np.ndarray:
        """``(n, 3)`` world points -> ``(n, 2)`` pixel (x, y) coordinates."""
        right, up, _ = self.axes()
        c = (self.size - 1) / 2.0
        x = c + self.scale * (points @ right - self.center[0])
        y = c - self.scale * (points @ up - self.center[1])
        return np.stack([x, y], axis=1)


def _padded_faces(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Faces as one ``(F, L)`` index array, each row padded with its last vertex, and the
    ``(F, L)`` mask of real entries: every face's maths in one array operation."""
    width = max(len(f) for f in mesh.faces)
    idx = np.array([list(f) + [f[-1]] * (width - len(f)) for f in mesh.faces], dtype=np.intp)
    mask = np.arange(width)[None, :] < np.array([len(f) for f in mesh.faces])[:, None]
    return idx, mask


def face_normals(mesh: Mesh) -> np.ndarray:
    """Unit outward normals ``(F, 3)`` (Newell's method, robust for any convex polygon).

    Padding a face with copies of its last vertex adds only zero terms (``p x p = 0``) to
    Newell's sum, and its wrap-around edge still closes the polygon.
    """
    idx, _ = _padded_faces(mesh)
    p = mesh.vertices[idx]
    normals = np.cross(p, np.roll(p, -1, axis=1)).sum(axis=1)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def face_centroids(mesh: Mesh) -> np.ndarray:
    """Mean vertex ``(F, 3)`` of every face (the painter's algorithm sorts by its depth)."""
    idx, mask = _padded_faces(mesh)
    return (mesh.vertices[idx] * mask[..., None]).sum(axis=1) / mask.sum(axis=1)[:, None]


def draw(
    mesh: Mesh,
    view: View,
    background,
    light=(0.0, 1.0, 0.0),
    ambient: float = 0.5,
    diffuse: float = 0.5,
    image: Image.Image | None = None,
) -> Image.Image:
    """Painter's-algorithm render of ``mesh`` (back faces culled, far faces first).

    ``light`` points towards the light in camera-rig coordinates (x right, y up, z away
    from the camera, before the elevation tilt), so lights stay put while the object
    turns, as on NORB's turntable. Grey meshes can be drawn on an ``"L"`` image.
    """
    forward = view.axes()[2]
    normals = face_normals(mesh)
    r = rot_y(view.azimuth)
    lvec = r.T @ (np.asarray(light, dtype=np.float64) / np.linalg.norm(light))
    visible = normals @ forward < -1e-9
    depth = face_centroids(mesh) @ forward
    shade = ambient + diffuse * np.clip(normals @ lvec, 0.0, 1.0)
    rgb = np.clip(mesh.colors * shade[:, None], 0.0, 1.0)
    px = view.project(mesh.vertices)
    if image is None:
        image = Image.new("RGB", (view.size, view.size), background)
    canvas = ImageDraw.Draw(image)
    grey = image.mode == "L"
    for k in np.argsort(-depth, kind="stable"):
        if not visible[k]:
            continue
        poly = [tuple(p) for p in px[list(mesh.faces[k])]]
        c = rgb[k]
        fill = round(255 * c.mean()) if grey else tuple(round(255 * x) for x in c)
        canvas.polygon(poly, fill=fill)
    return image


def shadow_mask(mesh: Mesh, view: View, light, blur: float) -> np.ndarray:
    """Soft shadow of ``mesh`` on the ground plane: float ``(size, size)`` in [0, 1].

    Every vertex is slid along the light direction down to ``y = 0`` and the faces are
    filled there; a Gaussian blur softens the edge as an area light would.
    """
    r = rot_y(view.azimuth)
    lvec = r.T @ (np.asarray(light, dtype=np.float64) / np.linalg.norm(light))
    lvec = lvec if lvec[1] > 0.05 else np.array([lvec[0], 0.05, lvec[2]])
    v = mesh.vertices
    ground = v - (v[:, 1:2] / lvec[1]) * lvec[None, :]
    px = view.project(ground)
    img = Image.new("L", (view.size, view.size), 0)
    canvas = ImageDraw.Draw(img)
    for f in mesh.faces:
        canvas.polygon([tuple(p) for p in px[list(f)]], fill=255)
    if blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(img, dtype=np.float32) / 255.0
