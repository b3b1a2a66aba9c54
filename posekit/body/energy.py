"""The data term and pose prior every body optimiser in posekit shares (refinement, baseline, orientation check).

For a point cloud ``p_i`` and model vertices ``v`` (a fixed subset of the mesh), per candidate body:

    E = mean_i |p_i - v(i)|_t  +  w_m mean_{v visible} |v - p(v)|_t                (truncated chamfer)
      + w_f free_space                                                           (scoring only)
      + w_lim sum_k dist(euler_k, limits_k)^2  +  w_b |beta|^2                   (priors)

* *distances*: ``v(i)`` is the model vertex nearest to point ``p_i``, ``p(v)`` the point nearest
  to vertex ``v``; ``|d|`` weighs the component of ``d`` along the vertex's normal ``n`` fully
  and the tangential rest by ``tangent_weight``: ``sqrt((n.d)^2 + w_t |d - (n.d) n|^2)``
  (``w_t = 1``: point-to-point; small: point-to-plane, Chen & Medioni 1992). The energy sees
  a few hundred of the mesh's vertices; point-to-point, a point between them pays half their
  spacing (the truth scores 2.4-3 cm on a perfect cloud), and a limb laid over another part
  lowers that floor there by adding vertices - wrong placements then score as low as the
  truth. Point-to-plane measures the distance to the surface the vertex stands for.
* *visible*: with a known ``viewpoint`` (a depth camera's origin), the model vertices nearest
  to the camera along their ray (an angular z-buffer of ``bin_m`` cells at the person); all
  vertices without one (full clouds).
* *free space*: the fraction of visible model vertices where the camera saw free space:
  outside the (dilated) silhouette of the points, or more than ``free_space_margin`` in front
  of the nearest measured point along the ray. A fit that puts the head where the camera saw
  past the person pays for it even when every point lies on its surface (upside-down fits).
  Not differentiable; used to rank candidates and for the confidence.
* *limits*: the pose sampler's full anatomical box (:func:`posekit.body.poses.joint_limits`),
  on the Euler angles ``R = Rz Ry Rx`` of each local joint rotation (both Euler solutions
  are tried, the smaller penalty counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from posekit.body.skeleton import MERGED_JOINTS, N_JOINTS

# The torso and head, whose orientation the orientation stage settles first: the network's
# limbs are its least reliable output, and a limb in the wrong place must not vote.
TORSO_JOINTS = (0, 1, 2, 3, 6, 9, 12, 13, 14, 15)

# Metres: a cloud whose centroid is farther than this from the origin is taken to be in its
# depth camera's frame (viewpoint = origin) when the caller does not say; no depth camera
# sees a whole person from closer.
AUTO_VIEWPOINT_MIN_DISTANCE_M = 1.2


@dataclass
class EnergySettings:
    """Weights and sizes of :class:`BodyEnergy` (metres)."""

    data_points: int = 384
    model_points: int = 600
    max_distance: float = 0.15
    model_to_data_weight: float = 0.5
    free_space_weight: float = 0.3
    free_space_distance_weight: float = 1.0
    free_space_margin: float = 0.05
    visible_tolerance: float = 0.04
    bin_m: float = 0.03
    limits_weight: float = 0.05
    betas_prior: float = 0.0005  # per unit beta^2; 0.002 held fits near the mean shape (truths paid 0.01-0.035)
    tangent_weight: float = 1.0  # of the tangential distance (module docstring): 1 point-to-point


def resolve_viewpoint(points: np.ndarray, viewpoint) -> np.ndarray | None:
    """``viewpoint``: None (no camera), "auto" (the origin when the cloud is far from it) or (3,) metres."""
    if viewpoint is None:
        return None
    if isinstance(viewpoint, str):
        if viewpoint != "auto":
            from posekit.errors import BadInputError

            raise BadInputError(f"viewpoint must be None, 'auto' or (x, y, z) metres, got {viewpoint!r}")
        centre = np.asarray(points, dtype=np.float64).mean(axis=0)
        return np.zeros(3) if np.linalg.norm(centre) > AUTO_VIEWPOINT_MIN_DISTANCE_M else None
    from posekit.validation import as_float_array

    return as_float_array(viewpoint, "viewpoint", (3,)).astype(np.float64)


# A cloud is one view of a person when, seen from some direction, this fraction of its points
# is front-most (:func:`single_view_fraction`): whole people reach 0.49-0.77 (upright ones seen
# from above the most), single views 0.88-0.99 (synthetic scans and Kinect-like views).
SINGLE_VIEW_FRACTION = 0.83


def single_view_fraction(points: np.ndarray, cell_m: float = 0.03, tolerance_m: float = 0.04,
                         max_points: int = 1024) -> float:
    """The largest fraction of points (N,3) metres that an orthographic z-buffer of ``cell_m`` cells
    sees as front-most (within ``tolerance_m``), over 26 directions (cube faces, edges, corners).

    One side of a person scanned by one camera is a single surface layer: nearly all of it is
    front-most from the camera's side. A whole person is seen at most about half at a time.
    Needs no fit and no camera position (it does not say which of the two sides the camera was
    on: a single layer is front-most from behind too).
    """
    p = np.asarray(points, dtype=np.float64)
    if len(p) > max_points:
        p = p[np.linspace(0, len(p) - 1, max_points).astype(np.int64)]
    p = p - p.mean(axis=0)
    grid = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1]), axis=-1).reshape(-1, 3)
    directions = grid[np.abs(grid).sum(axis=1) > 0].astype(np.float64)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    best = 0.0
    for d in directions:
        helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        x = np.cross(helper, d)
        x /= np.linalg.norm(x)
        y = np.cross(d, x)
        uv = np.floor(np.stack([p @ x, p @ y], axis=1) / cell_m).astype(np.int64)
        depth = p @ d
        uv -= uv.min(axis=0)
        _, cell = np.unique(uv[:, 0] * (int(uv[:, 1].max()) + 1) + uv[:, 1], return_inverse=True)
        front = np.full(cell.max() + 1, np.inf)
        np.minimum.at(front, cell, depth)
        best = max(best, float((depth <= front[cell] + tolerance_m).mean()))
    return best


# Metres: a point or a visible model vertex closer than this to the other side counts as
# explained / covered (:func:`surface_agreement`).
AGREEMENT_NEAR_M = 0.03


@torch.no_grad()
def surface_agreement(points: torch.Tensor, vertices: torch.Tensor, visible: torch.Tensor | None = None,
                      near_m: float = AGREEMENT_NEAR_M, max_points: int = 2048) -> dict[str, float]:
    """How well a fitted mesh and a cloud explain each other, at the mesh's full resolution.

    points (N,3) and vertices (V,3) metres (the whole mesh: about 1-2 cm apart, unlike the
    energy's sparse subset); visible (V,) bool: the vertices the camera would see (None: all).
    Returns ``outliers``: the fraction of points farther than ``near_m`` from every vertex (a
    limb where the fit has none), and ``coverage``: the fraction of visible vertices with a
    point within ``near_m`` (a limb where the data has none). The mean distances of the
    energy average a misplaced forearm away; these count it. k-d trees on the CPU (a few ms).
    """
    from scipy.spatial import cKDTree

    p = points.detach().cpu().double().numpy()
    v = vertices.detach().cpu().double().numpy()
    if len(p) > max_points:
        p = p[np.linspace(0, len(p) - 1, max_points).astype(np.int64)]
    outliers = float((cKDTree(v).query(p, distance_upper_bound=near_m)[0] > near_m).mean())
    if visible is not None:
        v = v[visible.detach().cpu().numpy().astype(bool)]
    covered = cKDTree(p).query(v, distance_upper_bound=near_m)[0] <= near_m
    return {"outliers": outliers, "coverage": float(covered.mean()) if len(covered) else 0.0}


def euler_zyx(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both Euler solutions (a, b, c) with ``R = Rz(c) Ry(b) Rx(a)`` of R (...,3,3): two (...,3) tensors, radians."""
    b = -torch.asin(R[..., 2, 0].clamp(-1 + 1e-6, 1 - 1e-6))
    a = torch.atan2(R[..., 2, 1], R[..., 2, 2])
    c = torch.atan2(R[..., 1, 0], R[..., 0, 0])
    first = torch.stack([a, b, c], dim=-1)
    wrap = lambda x: torch.remainder(x + math.pi, 2 * math.pi) - math.pi
    b2 = torch.where(b >= 0, math.pi - b, -math.pi - b)
    second = torch.stack([wrap(a + math.pi), b2, wrap(c + math.pi)], dim=-1)
    return first, second


class JointLimitPrior:
    """Squared distance (rad^2) of each local joint rotation's Euler angles outside the pose sampler's limits."""

    def __init__(self, device, dtype=torch.float32, kind: str = "full", margin_deg: float = 5.0):
        from posekit.body.poses import joint_limits

        lo, hi = joint_limits(kind)
        m = np.radians(margin_deg)
        self.lo = torch.as_tensor(lo - m, device=device, dtype=dtype)
        self.hi = torch.as_tensor(hi + m, device=device, dtype=dtype)
        mask = torch.ones(N_JOINTS, device=device, dtype=dtype)
        mask[0] = 0.0
        mask[list(MERGED_JOINTS)] = 0.0
        self.mask = mask

    def __call__(self, local: torch.Tensor) -> torch.Tensor:
        """local (K,24,3,3) -> (K,) penalty."""
        out = []
        for angles in euler_zyx(local):
            d = torch.relu(self.lo - angles) + torch.relu(angles - self.hi)
            out.append((d * d).sum(-1))
        return (torch.minimum(out[0], out[1]) * self.mask).sum(-1)


class BodyEnergy:
    """The shared energy for one cloud (see the module docstring); torch, on the body's device."""

    def __init__(self, body, points: torch.Tensor, settings: EnergySettings | None = None,
                 viewpoint: np.ndarray | None = None, seed: int = 0, joints: tuple[int, ...] | None = None):
        s = self.settings = settings or EnergySettings()
        dev, dtype = body.device, body.v_template.dtype
        rng = np.random.default_rng(seed)
        pts = points.to(dev, dtype)
        self.all_points = pts
        if len(pts) > s.data_points:
            pts = pts[torch.as_tensor(rng.choice(len(pts), s.data_points, replace=False), device=dev)]
        self.points = pts
        pool = np.arange(body.n_vertices)
        if joints is not None:  # only the vertices of these joints' parts (e.g. the torso)
            pool = pool[np.isin(body.vertex_joints(), joints)]
        self.subset = torch.as_tensor(np.sort(rng.choice(pool, min(s.model_points, len(pool)), replace=False)),
                                      device=dev)
        self.skin = body.weights[self.subset]  # (M,24): skins the subset's normals (:meth:`normals`)
        self.rest_normals = body.rest_normals()[self.subset]
        self.faces = torch.as_tensor(body.faces, device=dev)
        self.n_vertices = body.n_vertices
        self.limits = JointLimitPrior(dev, dtype)
        self.partial_model = joints is not None
        self.viewpoint = None
        if viewpoint is not None:
            self._setup_view(torch.as_tensor(viewpoint, device=dev, dtype=dtype))

    # -- the angular z-buffer of the camera at `viewpoint`
    def _setup_view(self, origin: torch.Tensor) -> None:
        pts = self.all_points
        centre = pts.mean(0)
        dist = float((centre - origin).norm())
        if dist < 0.3:
            return
        z = (centre - origin) / dist
        helper = torch.tensor([0.0, 1.0, 0.0], device=pts.device, dtype=pts.dtype)
        if abs(float(z @ helper)) > 0.9:
            helper = torch.tensor([1.0, 0.0, 0.0], device=pts.device, dtype=pts.dtype)
        x = torch.linalg.cross(helper, z)
        x = x / x.norm()
        y = torch.linalg.cross(z, x)
        self.viewpoint = origin
        self.view_R = torch.stack([x, y, z], dim=1)  # columns: camera axes in the cloud's frame
        self.bin = self.settings.bin_m / dist
        uv, depth = self._project(pts)
        margin = 3
        self.uv0 = uv.min(0).values - margin * self.bin
        size = ((uv.max(0).values - self.uv0) / self.bin).floor().long() + margin + 1
        self.grid = (int(size[0]), int(size[1]))
        cell, inside = self._cell(uv)
        n = self.grid[0] * self.grid[1]
        nearest = torch.full((n,), float("inf"), device=pts.device, dtype=pts.dtype)
        nearest = nearest.scatter_reduce(0, cell[inside], depth[inside], reduce="amin")
        occupied = torch.isfinite(nearest).to(pts.dtype).view(1, 1, self.grid[1], self.grid[0])
        # Holes of a cell or two in the measured silhouette are missing returns, not free space.
        grown = torch.nn.functional.max_pool2d(occupied, 3, stride=1, padding=1).view(-1) > 0
        self.data_depth = nearest
        self.occupied = grown
        # Distance (m at the person) from each cell to the silhouette: the differentiable side of
        # the free-space term, sampled bilinearly at each visible vertex (0 inside).
        from scipy.ndimage import distance_transform_edt

        outside = ~grown.view(self.grid[1], self.grid[0]).cpu().numpy()
        field = distance_transform_edt(outside) * self.settings.bin_m
        self.outside_m = torch.as_tensor(field, device=pts.device, dtype=pts.dtype)[None, None]

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = (x - self.viewpoint) @ self.view_R
        depth = q[..., 2].clamp_min(1e-3)
        return q[..., :2] / depth[..., None], depth

    def _cell(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ij = ((uv - self.uv0) / self.bin).floor().long()
        inside = (ij[..., 0] >= 0) & (ij[..., 0] < self.grid[0]) & (ij[..., 1] >= 0) & (ij[..., 1] < self.grid[1])
        cell = ij[..., 1].clamp(0, self.grid[1] - 1) * self.grid[0] + ij[..., 0].clamp(0, self.grid[0] - 1)
        return cell, inside

    @torch.no_grad()
    def visibility(self, verts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """verts (K,M,3) -> visible (K,M) bool, free-space violation (K,M) bool (all visible, none without a viewpoint)."""
        K, M, _ = verts.shape
        if self.viewpoint is None:
            ones = torch.ones(K, M, dtype=torch.bool, device=verts.device)
            return ones, torch.zeros_like(ones)
        uv, depth = self._project(verts)
        cell, inside = self._cell(uv)
        n = self.grid[0] * self.grid[1]
        # Vertices outside the grid get one shared extra cell per candidate.
        flat = torch.where(inside, cell, torch.full_like(cell, n)) + (n + 1) * torch.arange(K, device=verts.device)[:, None]
        front = torch.full((K * (n + 1),), float("inf"), device=verts.device, dtype=verts.dtype)
        front = front.scatter_reduce(0, flat.view(-1), depth.view(-1), reduce="amin")
        visible = depth <= front[flat] + self.settings.visible_tolerance
        seen = torch.where(inside, self.occupied[cell], torch.zeros_like(inside))
        in_front = inside & (depth < self.data_depth[cell] - self.settings.free_space_margin)
        return visible, visible & (~seen | in_front)

    def free_space_distance(self, verts: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """(K,) mean over visible vertices (K,M,3) of how far (m) each lies in space the camera saw
        empty: its distance outside the silhouette (bilinear in the distance field) plus how far
        it is in front of the measured surface beyond the margin; differentiable in the vertices."""
        if self.viewpoint is None:
            return verts.new_zeros(verts.shape[0])
        s = self.settings
        uv, depth = self._project(verts)
        size = torch.tensor(self.grid, device=verts.device, dtype=verts.dtype)
        # grid_sample's (-1, 1) spans the cells' centres at align_corners=True.
        xy = ((uv - self.uv0) / self.bin - 0.5) / (size - 1).clamp_min(1) * 2 - 1
        outside = torch.nn.functional.grid_sample(self.outside_m.expand(len(verts), -1, -1, -1), xy[:, :, None],
                                                  mode="bilinear", padding_mode="border", align_corners=True)
        outside = outside[:, 0, :, 0]
        cell, inside = self._cell(uv.detach())
        measured = self.data_depth[cell]
        seen = inside & torch.isfinite(measured)
        front = torch.where(seen, torch.relu(measured.nan_to_num(posinf=0.0) - s.free_space_margin - depth),
                            torch.zeros_like(depth))
        w = visible.to(verts.dtype)
        dist = (outside + front).clamp_max(3 * s.max_distance)
        return (dist * w).sum(1) / w.sum(1).clamp_min(1.0)

    def model_vertices(self, vertices: torch.Tensor) -> torch.Tensor:
        """The energy's vertex subset of full meshes (K,V,3) (a subset passes through)."""
        return vertices if vertices.shape[1] == len(self.subset) else vertices[:, self.subset]

    def pose(self, body, local: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor):
        """The body posed with only the energy's vertices skinned (:class:`~posekit.body.model.BodyOutput`)."""
        return body(local, betas, transl, vertex_ids=self.subset)

    def pose_terms(self, body, local: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor,
                   shape_prior: bool = True):
        """:meth:`terms` of K bodies (local (K,24,3,3), betas (K,n), transl (K,3)) and their
        :meth:`pose` output; ``shape_prior`` False leaves the betas prior out (betas held fixed)."""
        out = self.pose(body, local, betas, transl)
        normals = self.normals(out) if self.settings.tangent_weight != 1.0 else None
        return self.terms(out.vertices, local, betas if shape_prior else None, normals), out

    def normals(self, output) -> torch.Tensor:
        """Unit normals (K,M,3) of the energy's vertices posed as ``output`` (:meth:`pose`): the
        template's normals turned by the skinning's blended rotations (the shape's own change of
        the normals is left out: a few degrees)."""
        R = output.global_rotations  # (K,24,3,3)
        n = torch.einsum("mj,bjik,mk->bmi", self.skin, R, self.rest_normals)
        return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def _distance(self, delta: torch.Tensor, normals: torch.Tensor | None) -> torch.Tensor:
        """|delta| (...,3) with the tangential part weighted (module docstring)."""
        w = self.settings.tangent_weight
        d2 = (delta * delta).sum(-1)
        if normals is not None and w != 1.0:
            along = (delta * normals).sum(-1)
            d2 = along * along + w * (d2 - along * along).clamp_min(0.0)
        return d2.clamp_min(1e-10).sqrt()

    def chamfer(self, verts: torch.Tensor, visible: torch.Tensor | None = None,
                normals: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Truncated mean distances (K,): data -> model, and visible model -> data; ``normals``
        (K,M,3) of the vertices for the tangent weighting (None: point-to-point)."""
        pts, t = self.points, self.settings.max_distance
        # |p|^2 + |v|^2 - 2 p.v, built in place on the product (one K x N x M buffer).
        with torch.no_grad():
            d2 = torch.matmul(pts, verts.transpose(1, 2)).mul_(-2.0)
            d2 = d2.add_((pts * pts).sum(-1)[None, :, None]).add_((verts * verts).sum(-1)[:, None, :])
            near_v = d2.argmin(dim=2)  # (K,N) vertex nearest to each point
            near_p = d2.argmin(dim=1)  # (K,M) point nearest to each vertex
        gather = lambda x, i: torch.gather(x, 1, i[..., None].expand(-1, -1, 3))
        n_at_v = None if normals is None else gather(normals, near_v)
        to_model = self._distance(pts[None] - gather(verts, near_v), n_at_v).clamp_max(t).mean(1)
        per_vertex = self._distance(pts[near_p] - verts, normals).clamp_max(t)
        if visible is None:
            to_data = per_vertex.mean(1)
        else:
            w = visible.to(per_vertex.dtype)
            to_data = (per_vertex * w).sum(1) / w.sum(1).clamp_min(1.0)
        return to_model, to_data

    def terms(self, vertices: torch.Tensor, local: torch.Tensor | None = None,
              betas: torch.Tensor | None = None, normals: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """All terms (K,) for meshes (K,V,3) or their energy subset (K,M,3) (:meth:`pose`); ``energy`` is
        the weighted sum plus the priors (differentiable except the free-space term). ``normals``
        (K,M,3) of the subset (:meth:`normals`), for ``tangent_weight`` < 1; whole meshes get
        theirs from the faces when not given."""
        s = self.settings
        if normals is None and s.tangent_weight != 1.0 and vertices.shape[1] == self.n_vertices:
            from posekit.body.model import vertex_normals

            normals = self.model_vertices(vertex_normals(vertices, self.faces))
        verts = self.model_vertices(vertices)
        visible, violation = self.visibility(verts.detach())
        to_model, to_data = self.chamfer(verts, visible, normals)
        free = violation.sum(1).to(verts.dtype) / visible.sum(1).clamp_min(1).to(verts.dtype)
        free_m = self.free_space_distance(verts, visible) if s.free_space_distance_weight else torch.zeros_like(free)
        energy = to_model + s.model_to_data_weight * to_data + s.free_space_weight * free
        energy = energy + s.free_space_distance_weight * free_m
        prior = torch.zeros_like(energy)
        if local is not None:
            prior = prior + s.limits_weight * self.limits(local)
        if betas is not None:
            prior = prior + s.betas_prior * betas.pow(2).sum(-1)
        return {"energy": energy + prior, "to_model": to_model, "to_data": to_data, "free_space": free,
                "free_space_m": free_m, "prior": prior}


__all__ = ["AGREEMENT_NEAR_M", "AUTO_VIEWPOINT_MIN_DISTANCE_M", "SINGLE_VIEW_FRACTION", "TORSO_JOINTS", "BodyEnergy", "EnergySettings",
           "JointLimitPrior", "euler_zyx", "resolve_viewpoint", "single_view_fraction", "surface_agreement"]
