"""A procedural human body in the SMPL format: openly usable, made from code, no licensed data.

The body is the zero level set of a smooth union of tapered capsules and ellipsoids placed on
SMPL's rest skeleton (:data:`posekit.body.skeleton.REST_JOINTS`), meshed with naive surface
nets (Gibson, "Constrained elastic surface nets", 1998) into a closed mesh of a few thousand
vertices. Skinning weights fall off smoothly with the distance to each joint's bone; the joint
regressor reproduces the rest joints from nearby vertices; ten shape components (height,
girth, leg and arm length, shoulder and hip width, limb girth, torso length, head size, belly)
are displacement fields; pose correctives are zero.

``posekit body make-model --out FILE.npz`` writes it; the committed default
``posekit/body/models/default_body.npz`` was made with ``posekit body make-model --out
posekit/body/models/default_body.npz`` (voxel 0.02 m).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.body.skeleton import JOINT_NAMES, N_JOINTS, PARENTS, REST_JOINTS, kintree_table
from posekit.errors import BadInputError

SHAPE_COMPONENTS = ("height", "girth", "leg_length", "arm_length", "shoulder_width", "hip_width",
                    "limb_girth", "torso_length", "head_size", "belly")


@dataclass(frozen=True)
class _Piece:
    """A tapered capsule from a to b (radii ra, rb) or, with scale set, an ellipsoid at a."""

    a: tuple
    b: tuple | None = None
    ra: float = 0.0
    rb: float = 0.0
    scale: tuple | None = None


def _body_pieces() -> list[_Piece]:
    J = REST_JOINTS
    pieces: list[_Piece] = []
    for s in (1, -1):  # left (+x), right (-x)
        hip, knee, ankle, foot = (J[i] for i in ((1, 4, 7, 10) if s > 0 else (2, 5, 8, 11)))
        shoulder, elbow, wrist, hand = (J[i] for i in ((16, 18, 20, 22) if s > 0 else (17, 19, 21, 23)))
        collar = J[13 if s > 0 else 14]
        pieces += [
            _Piece(tuple(hip + [0.005 * s, 0.02, 0.0]), tuple(knee), 0.072, 0.052),
            _Piece(tuple(knee), tuple(ankle), 0.05, 0.036),
            _Piece(tuple(ankle + [0, -0.03, -0.03]), tuple(foot + [0.0, -0.01, 0.07]), 0.036, 0.028),
            _Piece(tuple(collar + [-0.02 * s, 0.01, 0.0]), tuple(shoulder), 0.055, 0.052),
            _Piece(tuple(shoulder), tuple(elbow), 0.048, 0.038),
            _Piece(tuple(elbow), tuple(wrist), 0.037, 0.028),
            _Piece(tuple(hand + [-0.01 * s, 0.0, 0.0]), scale=(0.075, 0.022, 0.045)),
        ]
    pieces += [
        _Piece((0.0, -0.215, 0.015), scale=(0.165, 0.125, 0.115)),   # hips / pelvis
        _Piece((0.0, -0.04, 0.005), scale=(0.145, 0.15, 0.105)),     # abdomen
        _Piece((0.0, 0.14, -0.005), scale=(0.175, 0.135, 0.115)),    # chest
        _Piece((0.0, 0.24, -0.02), (0.0, 0.34, 0.0), 0.052, 0.048),  # neck
        _Piece((0.0, 0.45, 0.03), scale=(0.08, 0.11, 0.095)),        # head
    ]
    return pieces


def _piece_distance(p: np.ndarray, piece: _Piece) -> np.ndarray:
    """Approximate signed distance (m) of points p (N,3) to one piece (negative inside)."""
    a = np.asarray(piece.a)
    if piece.scale is not None:
        s = np.asarray(piece.scale)
        q = (p - a) / s
        return (np.linalg.norm(q, axis=1) - 1.0) * s.min()
    b = np.asarray(piece.b)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    closest = a + t[:, None] * ab
    return np.linalg.norm(p - closest, axis=1) - (piece.ra + (piece.rb - piece.ra) * t)


def body_sdf(points: np.ndarray, smoothness: float = 0.025) -> np.ndarray:
    """Smooth union (log-sum-exp soft minimum, width ``smoothness`` m) of the body pieces at points (N,3)."""
    d = np.stack([_piece_distance(points, piece) for piece in _body_pieces()], axis=1)
    m = d.min(axis=1, keepdims=True)
    return m[:, 0] - smoothness * np.log(np.exp(-(d - m) / smoothness).sum(axis=1))


def surface_nets(values: np.ndarray, origin: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Naive surface nets: closed triangle mesh (vertices (V,3), faces (F,3)) of ``values < 0`` on a grid.

    values (nx,ny,nz) sampled at ``origin + spacing * (i,j,k)``, positive on the grid border.
    One vertex per cell crossed by the surface (the mean of its edge crossings), one quad per
    grid edge crossed (Gibson 1998).
    """
    nx, ny, nz = values.shape
    cell_sum = np.zeros((nx - 1, ny - 1, nz - 1, 3))
    cell_count = np.zeros((nx - 1, ny - 1, nz - 1))
    quads, directions = [], []
    grid = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), axis=-1)
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        v0, v1 = values[tuple(lo)], values[tuple(hi)]
        crossing = (v0 < 0) != (v1 < 0)
        idx = np.argwhere(crossing)  # edge start (i,j,k)
        t = v0[crossing] / (v0[crossing] - v1[crossing])
        point = grid[tuple(lo)][crossing].astype(np.float64)
        point[:, axis] += t
        others = [a for a in range(3) if a != axis]
        # The four cells around this edge.
        cells = []
        for du, dv in ((0, 0), (-1, 0), (-1, -1), (0, -1)):
            c = idx.copy()
            c[:, others[0]] += du
            c[:, others[1]] += dv
            cells.append(c)
        for c in cells:
            np.add.at(cell_sum, (c[:, 0], c[:, 1], c[:, 2]), point)
            np.add.at(cell_count, (c[:, 0], c[:, 1], c[:, 2]), 1.0)
        outward = np.zeros((len(idx), 3))
        outward[:, axis] = np.where(v0[crossing] < 0, 1.0, -1.0)  # inside -> outside along the edge
        quads.append(np.stack(cells, axis=1))  # (E,4,3)
        directions.append(outward)
    quads = np.concatenate(quads)
    directions = np.concatenate(directions)
    has_vertex = cell_count > 0
    vertex_id = -np.ones(cell_count.shape, dtype=np.int64)
    vertex_id[has_vertex] = np.arange(int(has_vertex.sum()))
    vertices = cell_sum[has_vertex] / cell_count[has_vertex][:, None]
    q = vertex_id[quads[..., 0], quads[..., 1], quads[..., 2]]  # (E,4)
    faces = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])
    directions = np.concatenate([directions, directions])
    vertices = origin + spacing * vertices
    # Orient each triangle's normal from inside to outside.
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = np.einsum("ij,ij->i", normal, directions) < 0
    faces[flip] = faces[flip][:, ::-1]
    return vertices, np.ascontiguousarray(faces)


def _bone_segments() -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per joint, the segments (start, end) of the bone(s) it moves."""
    J = REST_JOINTS
    children = {k: [c for c in range(N_JOINTS) if PARENTS[c] == k] for k in range(N_JOINTS)}
    leaf_tip = {15: [0.0, 0.17, 0.0], 10: [0.0, -0.01, 0.08], 11: [0.0, -0.01, 0.08],
                22: [0.09, 0.0, 0.0], 23: [-0.09, 0.0, 0.0]}
    segments = []
    for k in range(N_JOINTS):
        if k in leaf_tip:
            segments.append([(J[k], J[k] + np.asarray(leaf_tip[k]))])
        elif k == 0:  # the pelvis reaches half way to the hips; the thighs belong to the hip joints
            segments.append([(J[0], J[3]), (J[0], 0.5 * (J[0] + J[1])), (J[0], 0.5 * (J[0] + J[2]))])
        else:
            segments.append([(J[k], J[c]) for c in children[k]])
    return segments


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0.0, 1.0)
    closest = a + t[:, None] * ab
    return np.linalg.norm(p - closest, axis=1), closest


def skinning_weights(vertices: np.ndarray, falloff: float = 0.022) -> tuple[np.ndarray, np.ndarray]:
    """Smooth weights (V,24) from distances to the bones, and each vertex's nearest bone axis point (V,3)."""
    dist = np.full((len(vertices), N_JOINTS), np.inf)
    axis_point = np.zeros((len(vertices), N_JOINTS, 3))
    for k, segs in enumerate(_bone_segments()):
        for a, b in segs:
            d, c = _segment_distance(vertices, a, b)
            better = d < dist[:, k]
            dist[better, k] = d[better]
            axis_point[better, k] = c[better]
    rel = dist - dist.min(axis=1, keepdims=True)
    w = np.exp(-rel / falloff)
    w[rel > 6 * falloff] = 0.0
    w /= w.sum(axis=1, keepdims=True)
    nearest = dist.argmin(axis=1)
    return w, axis_point[np.arange(len(vertices)), nearest]


def joint_regressor(vertices: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(24,V) weights, each row summing to 1, with ``J_regressor @ vertices == joints`` exactly.

    Gaussian weights on the vertices surrounding each joint (within twice the distance to the
    nearest one), then the least-norm correction that reproduces the joint (4x4 system per joint).
    """
    reg = np.zeros((len(joints), len(vertices)))
    for k, jk in enumerate(joints):
        d = np.linalg.norm(vertices - jk, axis=1)
        reach = 2.0 * d.min() + 0.02
        near = np.flatnonzero(d < reach)
        w0 = np.exp(-0.5 * (d[near] / (0.5 * reach)) ** 2)
        w0 /= w0.sum()
        A = np.vstack([vertices[near].T, np.ones(len(near))])  # (4,n)
        b = np.append(jk, 1.0)
        lam = np.linalg.solve(A @ A.T + 1e-12 * np.eye(4), b - A @ w0)
        reg[k, near] = w0 + A.T @ lam
    return reg


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def shape_components(vertices: np.ndarray, axis_point: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(V,3,10) displacement per unit beta, in the order of :data:`SHAPE_COMPONENTS`."""
    v = vertices
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    side = np.sign(x)
    J = REST_JOINTS
    radial = v - axis_point
    torso_joints = [0, 3, 6, 9, 12, 13, 14]
    arm_joints = [16, 17, 18, 19, 20, 21, 22, 23]
    leg_joints = [1, 2, 4, 5, 7, 8, 10, 11]
    torso = weights[:, torso_joints].sum(1)
    arms = weights[:, arm_joints].sum(1)
    legs = weights[:, leg_joints].sum(1)
    head = weights[:, 15]
    hip_y, foot_y = J[1, 1], -1.2
    dirs = np.zeros((len(v), 3, len(SHAPE_COMPONENTS)))
    centre = np.array([0.0, -0.2, 0.0])
    dirs[:, :, 0] = 0.04 * (v - centre)
    dirs[:, :, 1] = 0.12 * radial * torso[:, None] + 0.05 * radial * (arms + legs)[:, None]
    leg_frac = _smoothstep((hip_y + 0.05 - y) / (hip_y + 0.05 - foot_y))
    dirs[:, 1, 2] = -0.045 * leg_frac
    arm_frac = _smoothstep((np.abs(x) - 0.2) / 0.6)
    dirs[:, 0, 3] = 0.04 * side * arm_frac
    upper = _smoothstep((y - 0.05) / 0.12)
    dirs[:, 0, 4] = 0.022 * side * upper * _smoothstep((np.abs(x) - 0.04) / 0.15)
    lower = _smoothstep((-0.1 - y) / 0.15)
    dirs[:, 0, 5] = 0.02 * side * lower * _smoothstep(np.abs(x) / 0.12)
    dirs[:, :, 6] = 0.12 * radial * (arms + legs)[:, None]
    dirs[:, 1, 7] = 0.03 * _smoothstep((y + 0.15) / 0.25)
    head_centre = np.array([0.0, 0.44, 0.03])
    dirs[:, :, 8] = 0.08 * (v - head_centre) * head[:, None]
    belly = np.exp(-((y + 0.02) ** 2) / (2 * 0.09**2)) * _smoothstep(z / 0.08) * torso
    dirs[:, 2, 9] = 0.025 * belly
    return dirs


def make_body_arrays(voxel: float = 0.02) -> dict[str, np.ndarray]:
    """All SMPL-format arrays of the procedural body (plus ``joint_names``, ``shape_names``)."""
    if not 0.005 <= voxel <= 0.05:
        raise BadInputError(f"voxel must be within 0.005-0.05 m, got {voxel}")
    lo = np.array([-1.0, -1.3, -0.25])
    hi = np.array([1.0, 0.65, 0.3])
    n = np.ceil((hi - lo) / voxel).astype(int) + 1
    axes = [lo[i] + voxel * np.arange(n[i]) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    values = body_sdf(grid).reshape(n)
    vertices, faces = surface_nets(values, lo, voxel)
    vertices = _smooth(vertices, faces, iterations=4)
    weights, axis_point = skinning_weights(vertices)
    J_regressor = joint_regressor(vertices, REST_JOINTS)
    shapedirs = shape_components(vertices, axis_point, weights)
    return {
        "v_template": vertices.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((len(vertices), 3, 9 * (N_JOINTS - 1)), dtype=np.float32),
        "J_regressor": J_regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree_table(),
        "f": faces.astype(np.int64),
        "joint_names": np.array(JOINT_NAMES),
        "shape_names": np.array(SHAPE_COMPONENTS),
    }


def _smooth(vertices: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Taubin smoothing (lambda 0.5, mu -0.53): removes the voxel staircase without shrinking."""
    import scipy.sparse as sp

    n = len(vertices)
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    adj = sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    adj.data[:] = 1.0
    deg = np.asarray(adj.sum(axis=1)).ravel()
    v = vertices.copy()
    for _ in range(iterations):
        for factor in (0.5, -0.53):
            v = v + factor * (adj @ v / deg[:, None] - v)
    return v


__all__ = ["SHAPE_COMPONENTS", "body_sdf", "joint_regressor", "make_body_arrays", "shape_components",
           "skinning_weights", "surface_nets"]
