"""SYMSOL-like renderer: symmetry sets render the same image; in-plane rotations rotate the image."""

import numpy as np
import pytest

from posekit.data.symsol import (
    SHAPES,
    SYMSOL_I,
    equivalent_rotations,
    read_symsol_dataset,
    render_symsol,
    symmetry_group,
    write_symsol_dataset,
)
from posekit.errors import BadInputError
from posekit.geometry.rigid_np import random_rotation_np
from posekit.geometry.so3_grid import geodesic_angle_np, rot_z


@pytest.mark.parametrize("shape,size", [("tet", 12), ("cube", 24), ("icosa", 60), ("cone", 360), ("cyl", 720)])
def test_symsol_i_equivalent_rotations_render_the_same_image(shape, size):
    rng = np.random.default_rng(0)
    R = random_rotation_np(rng)
    eq = equivalent_rotations(shape, R, 48)
    assert eq.shape == (size, 3, 3)
    # a group: distinct elements, closed
    G = symmetry_group(shape)
    assert geodesic_angle_np(G[:, None], G[None]).min(axis=1).max() < 1e-6
    img = render_symsol(shape, R, 48)
    assert (img.sum(-1) > 0).mean() > 0.1  # the shape is visible
    pick = eq[rng.choice(len(eq), size=min(len(eq), 12), replace=False)]
    for E in pick:
        assert np.abs(render_symsol(shape, E, 48).astype(int) - img).max() <= 1
    # a non-symmetry changes the image
    other = R @ random_rotation_np(rng)
    if geodesic_angle_np(other[None], eq).min() > 0.3:
        assert np.abs(render_symsol(shape, other, 48).astype(int) - img).mean() > 1.0


def test_symsol_ii_marks_reduce_the_equivalent_set():
    rng = np.random.default_rng(1)
    sizes = []
    for _ in range(6):
        R = random_rotation_np(rng)
        eq = equivalent_rotations("tetX", R, 32)
        img = render_symsol("tetX", R, 32)
        for E in eq:
            assert np.abs(render_symsol("tetX", E, 32).astype(int) - img).mean() <= 0.5
        sizes.append(len(eq))
        assert geodesic_angle_np(R[None], eq).min() < 1e-6  # the label itself is in its set
    # 3 rotations about the red face normal, times the number of faces hidden like the red one
    assert set(sizes) <= {3, 6, 9} and min(sizes) < 12


def test_quarter_turn_about_camera_axis_rotates_the_image_clockwise():
    rng = np.random.default_rng(2)
    for shape in SHAPES:
        R = random_rotation_np(rng)
        a = render_symsol(shape, R, 32)
        b = render_symsol(shape, rot_z(np.pi / 2) @ R, 32)
        assert np.abs(b.astype(int) - np.rot90(a, -1)).max() <= 1


def test_dataset_round_trip_and_bad_input(tmp_path):
    path = write_symsol_dataset(tmp_path, ["tet", "cone"], 2, 24, seed=0, progress=False)
    rows = read_symsol_dataset(path)
    assert len(rows) == 4 and rows[0][0].shape == (24, 24, 3) and rows[0][3].shape == (12, 3, 3)
    assert rows[2][2] == "cone" and rows[2][3].shape == (360, 3, 3)
    with pytest.raises(BadInputError, match="unknown SYMSOL shape"):
        render_symsol("torus", np.eye(3))
    assert set(SYMSOL_I) < set(SHAPES)
