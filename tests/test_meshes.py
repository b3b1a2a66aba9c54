"""Procedural object meshes (posekit.data.meshes): reproducible, varied, closed, symmetries exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from posekit.data.meshes import (
    DIAMETER_RANGE,
    SHAPE_FAMILIES,
    procedural_mesh,
    procedural_models,
    write_bop_models,
)
from posekit.io.bop import BopDataset, symmetry_transformations


def oriented_closed(faces: np.ndarray) -> bool:
    """Every directed edge appears once and its reverse once: closed and consistently wound."""
    d = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = set(map(tuple, d))
    return len(edges) == len(d) and all((b, a) in edges for a, b in d)


def signed_volume(v, f) -> float:
    t = v[f]
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6)


def test_same_seed_same_mesh_and_different_seeds_differ():
    a, ia = procedural_mesh(11)
    b, ib = procedural_mesh(11)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_array_equal(a.colors, b.colors)
    assert ia.diameter == ib.diameter
    signatures = set()
    for seed in range(40):
        m, _ = procedural_mesh(seed)
        signatures.add((len(m.vertices), round(m.diameter, 6), round(float(np.ptp(m.vertices[:, 2])), 6)))
    assert len(signatures) == 40


@pytest.mark.parametrize("family", sorted(SHAPE_FAMILIES))
def test_family_meshes_are_closed_sized_and_coloured(family):
    for seed in range(4):
        m, info = procedural_mesh(seed, family=family)
        assert oriented_closed(m.faces), (family, seed)
        assert signed_volume(m.vertices, m.faces) > 0
        assert DIAMETER_RANGE[0] - 1e-9 <= info.diameter <= DIAMETER_RANGE[1] + 1e-9
        assert info.diameter == pytest.approx(m.diameter)
        np.testing.assert_allclose(m.vertices.min(0) + m.vertices.max(0), 0, atol=1e-12)  # bbox centred
        assert m.colors is not None and m.colors.min() >= 0 and m.colors.max() <= 1


@pytest.mark.parametrize("family", sorted(SHAPE_FAMILIES))
def test_recorded_symmetries_map_the_mesh_onto_itself(family):
    for seed in range(4):
        m, info = procedural_mesh(seed, family=family)
        tree = cKDTree(m.vertices)
        scale = info.diameter
        # Discrete symmetries permute the vertices of these meshes exactly.
        for T in info.symmetries_discrete:
            moved = m.vertices @ T[:3, :3].T + T[:3, 3]
            assert tree.query(moved)[0].max() < 1e-9 * scale, (family, seed)
        # Continuous ones: rotating by a multiple of the tessellation step (72 and 96
        # segments share 2 pi / 24) maps the vertices onto themselves.
        for sym in info.symmetries_continuous:
            a = sym.axis / np.linalg.norm(sym.axis)
            Kx = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
            ang = 2 * math.pi / 24
            R = np.eye(3) + math.sin(ang) * Kx + (1 - math.cos(ang)) * Kx @ Kx
            moved = (m.vertices - sym.offset) @ R.T + sym.offset
            assert tree.query(moved)[0].max() < 1e-9 * scale, (family, seed)
        if info.is_symmetric:
            # And something that is not a symmetry does not pass the test.
            R = np.array([[math.cos(0.3), -math.sin(0.3), 0], [math.sin(0.3), math.cos(0.3), 0], [0, 0, 1]])
            moved = m.vertices @ (R @ np.array([[1, 0, 0], [0, 0.8, -0.6], [0, 0.6, 0.8]])).T
            assert tree.query(moved)[0].max() > 1e-3 * scale


def test_symmetry_counts():
    _box, info = procedural_mesh(0, family="box")
    n_disc = len(info.symmetries_discrete)
    assert n_disc in (3, 7)  # generic box: D2; square cross-section: D4
    assert len(symmetry_transformations(info)) == n_disc + 1
    _can, info = procedural_mesh(0, family="can")
    assert len(symmetry_transformations(info, 0.01)) == 2 * math.ceil(math.pi / 0.01)
    _, info = procedural_mesh(0, family="mug")
    assert len(symmetry_transformations(info)) == 1


def test_write_bop_models_reads_back(tmp_path):
    models = procedural_models(4, seed=3)
    assert len({m.name for m, _ in models.values()}) == 4
    write_bop_models(tmp_path / "models", models)
    ds = BopDataset(tmp_path)
    assert ds.obj_ids == [1, 2, 3, 4]
    for obj_id, (mesh, info) in models.items():
        back = ds.model(obj_id)
        np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-6)
        assert ds.models_info[obj_id].diameter == pytest.approx(info.diameter, rel=1e-9)
        assert len(ds.models_info[obj_id].symmetries_discrete) == len(info.symmetries_discrete)
        np.testing.assert_allclose(symmetry_transformations(ds.models_info[obj_id]),
                                   symmetry_transformations(info), atol=1e-9)
