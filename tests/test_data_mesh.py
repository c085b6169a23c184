"""The twins' rasteriser: vectorised face maths against a per-face reference."""

import numpy as np

from lvae.data.mesh import Mesh, face_centroids, face_normals


def _newell_loop(mesh: Mesh) -> np.ndarray:
    out = []
    for f in mesh.faces:  # Newell's method, one face at a time, written out by hand
        p = mesh.vertices[list(f)]
        n = np.zeros(3)
        for i in range(len(p)):
            a, b = p[i], p[(i + 1) % len(p)]
            n += [(a[1] - b[1]) * (a[2] + b[2]), (a[2] - b[2]) * (a[0] + b[0]),
                  (a[0] - b[0]) * (a[1] + b[1])]
        out.append(n / np.linalg.norm(n))
    return np.array(out)


def test_normals_and_centroids_of_mixed_polygons_match_a_per_face_loop():
    rs = np.random.RandomState(0)
    verts = rs.randn(12, 3)
    faces = [(0, 1, 2), (3, 4, 5, 6), (7, 8, 9, 10, 11), (2, 5, 9)]
    mesh = Mesh(verts, faces, np.ones((len(faces), 3)) * 0.5)
    np.testing.assert_allclose(face_normals(mesh), _newell_loop(mesh), atol=1e-12)
    want = np.array([verts[list(f)].mean(axis=0) for f in faces])
    np.testing.assert_allclose(face_centroids(mesh), want, atol=1e-12)


def test_unit_square_faces_up():
    sq = Mesh(np.array([[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0]], float), [(0, 1, 2, 3)],
              np.ones((1, 3)))
    np.testing.assert_allclose(face_normals(sq), [[0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(face_centroids(sq), [[0.5, 0, 0.5]])
