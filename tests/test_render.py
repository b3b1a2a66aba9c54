"""Analytic checks of the ray-casting renderer (posekit.data.render)."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.data.render import pixel_rays, render_depth, render_rgb, render_scene
from posekit.errors import BadInputError
from posekit.io.mesh import Mesh

K = np.array([[200.0, 0.0, 79.5], [0.0, 210.0, 59.5], [0.0, 0.0, 1.0]])
W, H = 160, 120


def quad(half: float = 1.0, colors=None) -> Mesh:
    v = np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]], float)
    return Mesh(v, np.array([[0, 1, 2], [0, 2, 3]]), colors=colors)


def box(size=(0.1, 0.1, 0.1)) -> Mesh:
    sx, sy, sz = np.asarray(size) / 2
    v = np.array([[x, y, z] for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)])
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return Mesh(v, f)


def uv_sphere(radius: float, n_lat: int = 90, n_lon: int = 180) -> Mesh:
    th = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    tt, pp = np.meshgrid(th, ph, indexing="ij")
    ring = np.stack([np.sin(tt) * np.cos(pp), np.sin(tt) * np.sin(pp), np.cos(tt)], -1).reshape(-1, 3)
    v = np.vstack([[0, 0, 1], ring, [0, 0, -1]]) * radius
    faces = []
    for j in range(n_lon):
        faces.append([0, 1 + j, 1 + (j + 1) % n_lon])
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b = 1 + i * n_lon + j, 1 + i * n_lon + (j + 1) % n_lon
            faces += [[a, a + n_lon, b], [b, a + n_lon, b + n_lon]]
    last = len(v) - 1
    base = 1 + (n_lat - 2) * n_lon
    for j in range(n_lon):
        faces.append([base + j, last, base + (j + 1) % n_lon])
    return Mesh(v, np.array(faces))


def translation(x=0.0, y=0.0, z=0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def test_tilted_plane_depth_is_exact_z_not_ray_length():
    # Plane z = 0.8 + 0.2 x (camera frame): at pixel ray (a, b, 1) the depth is 0.8 / (1 - 0.2 a).
    angle = np.arctan(0.2)
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    T = translation(z=0.8)
    T[:3, :3] = R.T  # model z-axis normal tilted so that the plane is z = 0.8 + 0.2 x
    depth = render_depth(quad(5.0), T, K, W, H)
    rays = pixel_rays(K, W, H)
    expected = 0.8 / (1 - 0.2 * rays[..., 0])
    assert depth.dtype == np.float32 and depth.shape == (H, W)
    np.testing.assert_allclose(depth, expected, rtol=1e-5)


def test_box_face_depth_and_silhouette_match_projection():
    # Box 0.1 m wide, front face at z = 0.6 - 0.05 = 0.55.
    depth = render_depth(box((0.1, 0.1, 0.1)), translation(z=0.6), K, W, H)
    inside = depth > 0
    np.testing.assert_allclose(depth[inside], 0.55, atol=1e-6)
    # Front face projects to |u - cx| <= fx * 0.05 / 0.55 (the rest of the box is behind it).
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    a = np.abs(u - K[0, 2]) <= K[0, 0] * 0.05 / 0.55 - 1e-6
    b = np.abs(v - K[1, 2]) <= K[1, 1] * 0.05 / 0.55 - 1e-6
    assert inside.sum() == (a & b).sum()
    assert (inside == (a & b)).all()


def test_sphere_depth_at_centre_pixel_and_off_axis():
    r, d = 0.1, 1.0
    K2 = np.array([[300.0, 0, 80.0], [0, 300.0, 60.0], [0, 0, 1]])
    depth = render_depth(uv_sphere(r), translation(z=d), K2, W, H)
    assert depth[60, 80] == pytest.approx(d - r, abs=2e-4)
    # Off-axis pixel: intersection of the ray with the exact sphere (tessellation error < 1 mm).
    ray = np.array([(95 - 80) / 300.0, 0.0, 1.0])
    c = np.array([0, 0, d])
    a2, b2 = ray @ ray, -2 * ray @ c
    t = (-b2 - np.sqrt(b2 ** 2 - 4 * a2 * (c @ c - r ** 2))) / (2 * a2)
    assert depth[60, 95] == pytest.approx(t, abs=1e-3)
    # Silhouette radius: a sphere at distance d subtends r / sqrt(d^2 - r^2) in tan.
    radius_px = 300 * r / np.sqrt(d ** 2 - r ** 2)
    row = depth[60] > 0
    assert abs(row.sum() - (2 * np.floor(radius_px) + 1)) <= 2


def test_scene_occlusion_instance_full_masks_and_normals():
    front, back = box((0.05, 0.05, 0.05)), quad(0.2)
    res = render_scene([front, back], [translation(z=0.5), translation(z=0.7)], K, W, H, full_masks=True)
    assert res.instance.dtype == np.int32
    assert set(np.unique(res.instance)) == {-1, 0, 1}
    # The quad's full mask includes pixels covered by the box; its visible mask does not.
    occluded = res.full_masks[1] & (res.instance == 0)
    assert occluded.sum() == res.full_masks[0].sum() > 0
    np.testing.assert_array_equal(res.full_masks[0], res.instance == 0)
    np.testing.assert_allclose(res.full_depths[1][res.full_masks[1]], 0.7, atol=1e-6)
    # Normals face the camera: on the quad (0, 0, -1) whatever its winding.
    np.testing.assert_allclose(res.normals[res.instance == 1], [[0, 0, -1]] * int((res.instance == 1).sum()),
                               atol=1e-6)
    assert (res.normals[res.instance == -1] == 0).all()


def test_rgb_interpolates_vertex_colours_and_shades():
    colors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], float)
    plane = quad(1.0, colors)
    T = translation(z=1.0)
    flat = render_rgb(plane, T, K, W, H, ambient=1.0)
    # Pixel (u, v) hits (x, y) = ((u - cx)/fx, (v - cy)/fy); triangle 0 is (v0, v1, v2) where y < x.
    u, v = 130, 70
    x, y = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    assert y < x
    # Barycentric coords of (x, y) in v0=(-1,-1), v1=(1,-1), v2=(1,1).
    b2 = (y + 1) / 2
    b1 = (x + 1) / 2 - b2
    b0 = 1 - b1 - b2
    expected = (b0 * colors[0] + b1 * colors[1] + b2 * colors[2]) * 255
    np.testing.assert_allclose(flat[v, u].astype(float), expected, atol=1.0)
    # Lambertian: light along the normal gives full colour; light from the side gives ambient only.
    lit = render_rgb(plane, T, K, W, H, ambient=0.2, light_dir=(0, 0, -1))
    side = render_rgb(plane, T, K, W, H, ambient=0.2, light_dir=(1, 0, 0))
    np.testing.assert_allclose(lit.astype(float), flat.astype(float), atol=1.0)
    np.testing.assert_allclose(side.astype(float), flat.astype(float) * 0.2, atol=1.0)


def test_object_behind_camera_or_off_image_renders_nothing():
    assert (render_depth(box(), translation(z=-1.0), K, W, H) == 0).all()
    res = render_scene([box()], [translation(x=5.0, z=1.0)], K, W, H, full_masks=True)
    assert not res.full_masks[0].any() and (res.instance == -1).all()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(BadInputError):
        render_depth(box(), np.eye(3), K, W, H)
    with pytest.raises(BadInputError):
        render_depth(box(), translation(z=1), np.eye(4), W, H)
    with pytest.raises(BadInputError):
        render_scene([box()], [], K, W, H)
    with pytest.raises(BadInputError):
        render_depth(box(), translation(z=1), K, 0, H)
