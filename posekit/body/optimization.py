"""Optimisation-based body fitting: the baseline users would otherwise write, and the refinement step.

Both minimise the same energy (:class:`posekit.body.energy.BodyEnergy`: truncated chamfer with
the model side restricted to what the camera sees, free space where a viewpoint is known,
joint limits of the pose sampler, a shape prior), coarse to fine:

1. **orientation**: candidate root rotations, each rigidly aligned by ICP (truncated nearest
   neighbours both ways, weighted Kabsch; the body turns about its pelvis), ranked by the
   energy; the best ``keep`` go on;
2. **joint search**: down the kinematic tree (parents first), each joint's local rotation is
   chosen among its current value, turns of +-0.5 and +-1 rad about each axis (halved on each
   further pass) and samples within the joint limits, by the energy of the whole body; a rigid re-alignment after each
   sweep (a discrete articulated ICP that cannot get stuck in a gradient's local minimum);
3. **polish**: the best candidate by the whole body's energy goes to Adam on all joint
   rotations (axis-angle), shape and translation, with a denser data term measured
   point-to-plane (``dense_tangent_weight``: the search ranks by point-to-point distances,
   whose basins are wider; the polish fits the surface, below the vertices' spacing).

The baseline starts from the 24 octahedral orientations of the body in its rest pose (a fair
multi-start: the mean pose, every orientation 90 deg apart); refinement from the network's fit,
its flips (180 deg about each body axis) and any extra orientations the caller gives. Given the
floor's normal ``up``, both also start standing upright at ``upright_headings`` headings about it.
Refinement can first pull each kept candidate's limbs onto the network's part labels
(:func:`part_icp`, ``label_iterations``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from posekit.body.energy import TORSO_JOINTS, BodyEnergy, EnergySettings
from posekit.body.model import BodyModel
from posekit.body.skeleton import MERGED_JOINTS, N_JOINTS

# Joints searched and optimised, parents first (the root is handled by the rigid alignment).
SEARCH_JOINTS = tuple(j for j in range(1, N_JOINTS) if j not in MERGED_JOINTS)
# 180 deg about the body's x (left), y (up, its long axis) and z (forward) axes.
FLIPS = np.stack([np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])])


@dataclass
class OptimizationSettings:
    """Coarse-to-fine settings (see the module docstring); ``energy`` is shared with the caller."""

    n_inits: int = 24  # baseline: octahedral orientations (24), or the first n of them
    keep: int = 2  # candidates that go on from the orientation stage to the joint search
    rigid_iterations: int = 8
    sweeps: int = 2  # joint-search passes down the tree
    random_candidates: int = 10  # per joint and pass, within the joint limits
    iterations: int = 100  # Adam steps of the polish
    label_iterations: int = 0  # part-label ICP (:func:`part_icp`) of each kept candidate, given labels
    upright_headings: int = 12  # with ``up``: also start upright at this many headings about it
    turn_penalty: float = 0.015  # refinement: energy a candidate turned > 90 deg from the start must win by
    dense_data_points: int = 768  # the polish's data term: more points on both sides
    dense_model_points: int = 1500
    # The polish's ``EnergySettings.tangent_weight`` (None: the search's): coarse to fine, the
    # search ranks by point-to-point distances (wide basins), the polish fits point-to-plane.
    dense_tangent_weight: float | None = 0.1
    retry_flips: bool = True  # BodyFitter.refine: refine a low-confidence fit again from its three flips
    # BodyFitter.refine: a still low-confidence fit is refined again, from the network's fit and
    # from itself, with a wider joint search (these passes, candidates per joint, another seed).
    retry_wide: bool = True
    retry_sweeps: int = 3
    retry_random_candidates: int = 30
    retry_min_gain: float = 0.02  # the confidence a wide-retry fit must gain to be kept
    lr: float = 0.02
    seed: int = 0
    energy: EnergySettings = field(default_factory=EnergySettings)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class OptimizationResult:
    local_rotations: torch.Tensor  # (24,3,3)
    betas: torch.Tensor  # (n_betas,)
    transl: torch.Tensor  # (3,)
    energy: float
    terms: dict  # floats: to_model, to_data, free_space, prior (metres / fraction)


def _pose_batch(local: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor, K: int):
    return (local.expand(K, -1, -1, -1).clone(), betas.expand(K, -1).clone(), transl.expand(K, -1).clone())


def set_root(body: BodyModel, local: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor,
             R: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotations and transl (K,...) of the bodies moved rigidly by ``x -> R x + t`` (R (K,3,3), t (K,3))."""
    j0 = body.rest_joints(betas)[:, 0]
    local = local.clone()
    local[:, 0] = R @ local[:, 0]
    transl = (R @ (j0 + transl)[..., None])[..., 0] + t - j0
    return local, transl


@torch.no_grad()
def rigid_align(body: BodyModel, energy: BodyEnergy, local: torch.Tensor, betas: torch.Tensor,
                transl: torch.Tensor, iterations: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """ICP of K posed bodies (local (K,24,3,3), betas (K,n), transl (K,3)) to the cloud; returns the new local, transl."""
    from posekit.geometry.alignment import weighted_kabsch

    pts = energy.points
    # The joints do not move: pose once, carry the rigid motion along, apply it once at the end.
    posed = energy.pose(body, local, betas, transl).vertices
    R_acc = torch.eye(3, device=pts.device, dtype=pts.dtype).expand(len(posed), 3, 3)
    t_acc = torch.zeros(len(posed), 3, device=pts.device, dtype=pts.dtype)
    for it in range(iterations):
        # Model -> data pairs (visible vertices) with a shrinking reach; data -> model pairs only
        # when the model is the whole body (a torso alone must not be pulled onto the limbs' points).
        trunc = 0.3 - (0.3 - 0.5 * energy.settings.max_distance) * it / max(iterations - 1, 1)
        verts = posed @ R_acc.transpose(1, 2) + t_acc[:, None]
        visible, _ = energy.visibility(verts)
        d = torch.cdist(pts[None].expand(len(verts), -1, -1), verts)  # (K,N,M)
        near_m = d.min(2)
        near_d = d.min(1)
        src = torch.cat([torch.gather(verts, 1, near_m.indices[..., None].expand(-1, -1, 3)), verts], dim=1)
        dst = torch.cat([pts[None].expand(len(verts), -1, -1), pts[near_d.indices]], dim=1)
        w_dm = (near_m.values < 0.5 * trunc).to(pts.dtype) * (0.0 if energy.partial_model else 1.0)
        w_md = (visible & (near_d.values < trunc)).to(pts.dtype)
        w = torch.cat([w_dm, w_md], dim=1) + 1e-6
        T = weighted_kabsch(src, dst, w)
        R_acc = T[:, :3, :3] @ R_acc
        t_acc = (T[:, :3, :3] @ t_acc[..., None])[..., 0] + T[:, :3, 3]
    return set_root(body, local, betas, transl, R_acc, t_acc)


def label_neighbourhood(mirror: bool = False) -> np.ndarray:
    """(P,P) bool: the parts a point labelled p may pair with: p, its parent and its children
    (a label off by one part at a boundary still finds its surface), and with ``mirror`` also the
    left/right twin of each of them."""
    from posekit.body.skeleton import JOINT_NAMES, N_PARTS, PART_JOINTS, part_parents

    allowed = np.eye(N_PARTS, dtype=bool)
    for p, q in enumerate(part_parents()):
        if q >= 0:
            allowed[p, q] = allowed[q, p] = True
    if mirror:
        names = [JOINT_NAMES[j] for j in PART_JOINTS]
        twin = [names.index(n.replace("left", "#").replace("right", "left").replace("#", "right")) for n in names]
        allowed = allowed | allowed[:, twin]
    return allowed


@torch.no_grad()
def part_icp(body: BodyModel, points: torch.Tensor, labels: torch.Tensor, local: torch.Tensor, betas: torch.Tensor,
             transl: torch.Tensor, iterations: int = 4, reach: float = 0.35, model_points: int = 800,
             data_points: int = 512, stiffness: float = 0.005, neighbours: bool = True,
             seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Articulated ICP with part labels as correspondences, for K bodies (local (K,24,3,3), betas
    (K,n), transl (K,3)); returns the new local rotations and transl.

    Each input point (N,3) with a part label (N,) (the network's segmentation) pairs with the
    nearest model vertex of its part or a neighbouring one (:func:`label_neighbourhood`), so a
    body turned the wrong way or a limb on the wrong side is pulled by where its parts *are*,
    not by whichever surface happens to be close (what plain ICP does). Per iteration: a rigid
    fit of the whole body (weighted Kabsch), then, down the kinematic tree, the rotation of
    each joint about its posed position that best maps its part's paired vertices (and, at a
    third of the weight, its descendants') onto their points (orthogonal Procrustes about a
    fixed centre, Besl & McKay 1992 per part), the subtree turning with it. Pairs farther than
    ``reach`` are dropped (robust to wrong labels); ``stiffness`` (per pair, m^2) keeps a joint
    with few or degenerate pairs (a limb seen along its axis) where it was.
    """
    from posekit.body.network import global_to_local
    from posekit.body.skeleton import PARENTS, PART_JOINTS, joint_to_part
    from posekit.geometry.alignment import weighted_kabsch
    from posekit.geometry.so3 import project_to_so3

    dev, dtype = body.device, body.v_template.dtype
    rng = np.random.default_rng(seed)
    pts, lab = points.to(dev, dtype), labels.to(dev).long()
    if len(pts) > data_points:
        pick = torch.as_tensor(rng.choice(len(pts), data_points, replace=False), device=dev)
        pts, lab = pts[pick], lab[pick]
    subset = torch.as_tensor(np.sort(rng.choice(body.n_vertices, min(model_points, body.n_vertices), replace=False)),
                             device=dev)
    vjoint = torch.as_tensor(body.vertex_joints(), device=dev)[subset]  # (M,) joint of each vertex
    vpart = torch.as_tensor(joint_to_part(), device=dev)[vjoint]
    table = label_neighbourhood() if neighbours else np.eye(len(PART_JOINTS), dtype=bool)
    allowed = torch.as_tensor(table, device=dev)[lab][:, vpart]  # (N,M)
    # subtree[j, k]: joint k is j or below it.
    subtree = np.eye(N_JOINTS, dtype=bool)
    for k in range(1, N_JOINTS):
        p = PARENTS[k]
        while p >= 0:
            subtree[p, k] = True
            p = PARENTS[p]
    subtree = torch.as_tensor(subtree, device=dev)
    K = local.shape[0]
    for _ in range(iterations):
        out = body(local, betas, transl, vertex_ids=subset)
        verts, joints, G = out.vertices, out.joints.clone(), out.global_rotations.clone()
        d = torch.cdist(pts[None].expand(K, -1, -1), verts).masked_fill(~allowed[None], float("inf"))
        dist, near = d.min(2)  # (K,N)
        w = (dist < reach).to(dtype)
        src = torch.gather(verts, 1, near[..., None].expand(-1, -1, 3))
        ok = w.sum(1) >= 3
        if not bool(ok.any()):
            break
        T = weighted_kabsch(src, pts[None].expand(K, -1, -1), w + 1e-6)
        T[~ok] = torch.eye(4, device=dev, dtype=dtype)
        R0, t0 = T[:, :3, :3], T[:, :3, 3]
        local, transl = set_root(body, local, betas, transl, R0, t0)
        src = src @ R0.transpose(1, 2) + t0[:, None]
        joints = joints @ R0.transpose(1, 2) + t0[:, None]
        G = R0[:, None] @ G
        pair_joint = vjoint[near]  # (K,N) joint of each pair's vertex
        for j in SEARCH_JOINTS:
            own = (pair_joint == j).to(dtype)
            below = subtree[j][pair_joint].to(dtype) - own
            wj = w * (own + below / 3.0)
            centre = joints[:, j]
            a, b = src - centre[:, None], pts[None] - centre[:, None]
            M = torch.einsum("kn,kni,knj->kij", wj, b, a)
            M = M + stiffness * wj.sum(1).clamp_min(1.0)[:, None, None] * torch.eye(3, device=dev, dtype=dtype)
            R = project_to_so3(M)  # (K,3,3) about the joint, in the world frame
            moved = subtree[j][pair_joint]  # pairs whose vertex turns with joint j
            turned = (src - centre[:, None]) @ R.transpose(1, 2) + centre[:, None]
            src = torch.where(moved[..., None], turned, src)
            jm = subtree[j]
            joints[:, jm] = (joints[:, jm] - centre[:, None]) @ R.transpose(1, 2) + centre[:, None]
            G[:, jm] = R[:, None] @ G[:, jm]
        new_local = global_to_local(G)
        merged = list(MERGED_JOINTS)
        new_local[:, merged] = local[:, merged]
        local = new_local
    return local, transl


def diverse_best(energy: torch.Tensor, roots: torch.Tensor, keep: int, min_deg: float = 60.0) -> torch.Tensor:
    """Indices of up to ``keep`` lowest-energy candidates whose roots (K,3,3) differ pairwise by
    more than ``min_deg``: a front/back ambiguity of a single view keeps both hypotheses."""
    chosen: list[int] = []
    for k in energy.argsort().tolist():
        if all(_angle(roots[k], roots[c]) > np.radians(min_deg) for c in chosen):
            chosen.append(k)
        if len(chosen) == keep:
            break
    return torch.as_tensor(chosen, device=energy.device)


def _turns(device, dtype, scale: float = 1.0) -> torch.Tensor:
    from posekit.geometry.so3 import so3_exp

    axes = torch.eye(3, device=device, dtype=dtype)
    omegas = torch.cat([scale * a * axes for a in (-1.0, -0.5, 0.5, 1.0)])
    return so3_exp(omegas)  # (12,3,3)


@torch.no_grad()
def joint_search(body: BodyModel, energy: BodyEnergy, local: torch.Tensor, betas: torch.Tensor,
                 transl: torch.Tensor, settings: OptimizationSettings,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy search of each joint's local rotation down the tree (module docstring, stage 2), one body (24,3,3)."""
    from posekit.body.poses import euler_to_matrix, joint_limits

    lo, hi = joint_limits("full")
    for sweep in range(settings.sweeps):
        # Coarse to fine: each pass turns by half as much and samples the limits half as often.
        turns = _turns(local.device, local.dtype, 0.5**sweep)
        n_random = max(settings.random_candidates >> sweep, 1)
        for j in SEARCH_JOINTS:
            random = torch.as_tensor(euler_to_matrix(rng.uniform(lo[j], hi[j], size=(n_random, 3))),
                                     device=local.device, dtype=local.dtype)
            cands = torch.cat([local[j][None], local[j] @ turns, random])
            L, b, t = _pose_batch(local[None], betas[None], transl[None], len(cands))
            L[:, j] = cands
            e = energy.pose_terms(body, L, b, t, shape_prior=False)[0]["energy"]
            local = L[int(e.argmin())]
        L, t = rigid_align(body, energy, local[None], betas[None], transl[None], iterations=4)
        local, transl = L[0], t[0]
    return local, transl


def polish(body: BodyModel, energy: BodyEnergy, local: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor,
           settings: OptimizationSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam on axis-angle of every searched joint and the root, betas and transl, for K bodies at once."""
    from posekit.geometry.so3 import so3_exp

    K = local.shape[0]
    dev, dtype = local.device, local.dtype
    free = torch.zeros(N_JOINTS, 1, device=dev, dtype=dtype)
    free[list(SEARCH_JOINTS)] = 1.0
    free[0] = 1.0
    delta = torch.zeros(K, N_JOINTS, 3, device=dev, dtype=dtype, requires_grad=True)
    betas = betas.clone().requires_grad_(True)
    transl = transl.clone().requires_grad_(True)
    base = local.detach()
    opt = torch.optim.Adam([delta, betas, transl], lr=settings.lr)
    with torch.enable_grad():
        for _ in range(settings.iterations):
            L = base @ so3_exp(delta * free)
            total = energy.pose_terms(body, L, betas, transl)[0]["energy"]
            opt.zero_grad(set_to_none=True)
            total.sum().backward()
            opt.step()
    return (base @ so3_exp(delta * free)).detach(), betas.detach(), transl.detach()


def fit_by_optimization(body: BodyModel, points: torch.Tensor, settings: OptimizationSettings | None = None,
                        init: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                        viewpoint: np.ndarray | None = None,
                        extra_roots: torch.Tensor | None = None, up: np.ndarray | None = None,
                        labels: torch.Tensor | None = None) -> OptimizationResult:
    """Fit ``body`` to points (N,3) metres (torch); see the module docstring.

    init: (local rotations (24,3,3), betas (n,), transl (3,)) to refine from (refinement), or
    None (the baseline's multi-start). viewpoint: the depth camera's position (3,) or None.
    extra_roots (E,3,3): more root orientations to try with ``init``'s joint rotations.
    up (3,): the direction away from the floor, if known: head-down candidates are penalised,
    and ``settings.upright_headings`` upright starts are added. labels (N,): a part label per
    point (the network's segmentation), for the part-label ICP (``settings.label_iterations``).
    """
    s = settings or OptimizationSettings()
    dev, dtype = body.device, body.v_template.dtype
    rng = np.random.default_rng(s.seed)
    energy = BodyEnergy(body, points.to(dev, dtype), s.energy, viewpoint=viewpoint, seed=s.seed)
    if init is None:
        from posekit.geometry.rotation_groups import rotation_group

        roots = torch.as_tensor(rotation_group("octahedral").elements[: s.n_inits], device=dev, dtype=dtype)
        if up is not None and s.upright_headings > 0:  # what a user who knows the floor would add
            roots = torch.cat([roots, torch.as_tensor(upright_roots(up, s.upright_headings), device=dev, dtype=dtype)])
        K = len(roots)
        local = torch.eye(3, device=dev, dtype=dtype).expand(K, N_JOINTS, 3, 3).clone()
        local[:, 0] = roots
        betas = torch.zeros(K, body.n_betas, device=dev, dtype=dtype)
        with torch.no_grad():
            centre = body(local, betas).vertices.mean(1)
        transl = energy.points.mean(0) - centre
    else:
        local0, b0, t0 = (x.to(dev, dtype) for x in init)
        flips = torch.as_tensor(FLIPS, device=dev, dtype=dtype)
        roots = [local0[0][None], local0[0] @ flips]
        if extra_roots is not None and len(extra_roots):
            roots.append(extra_roots.to(dev, dtype))
        if up is not None and s.upright_headings > 0:
            roots.append(torch.as_tensor(upright_roots(up, s.upright_headings), device=dev, dtype=dtype))
        roots = torch.cat(roots)
        K = len(roots)
        local, betas, transl = _pose_batch(local0[None], b0[None], t0[None], K)
        # Turn about the fitted pelvis so that each candidate keeps the body where it was.
        with torch.no_grad():
            pelvis = body(local[:1], betas[:1], transl[:1]).joints[0, 0]
        R = roots @ local0[0].T
        local, transl = set_root(body, local, betas, transl, R, pelvis - (R @ pelvis[:, None])[..., 0])
    torso = BodyEnergy(body, points.to(dev, dtype), s.energy, viewpoint=viewpoint, seed=s.seed, joints=TORSO_JOINTS)
    local, transl = rigid_align(body, torso, local, betas, transl, s.rigid_iterations)
    with torch.no_grad():
        terms, posed = torso.pose_terms(body, local, betas, transl, shape_prior=False)
        e = _data_energy(terms) + head_down_penalty(posed.joints, up)
    order = diverse_best(e + _turn_penalty(local, init, s.turn_penalty), local[:, 0], max(1, s.keep))
    local, betas, transl = local[order], betas[order], transl[order]
    if labels is not None and s.label_iterations > 0:
        local, transl = part_icp(body, points, labels, local, betas, transl, iterations=s.label_iterations,
                                 seed=s.seed)
    if s.sweeps > 0:
        found = [joint_search(body, energy, local[k], betas[k], transl[k], s, rng) for k in range(len(order))]
        local = torch.stack([f[0] for f in found])
        transl = torch.stack([f[1] for f in found])
    with torch.no_grad():
        terms, posed = energy.pose_terms(body, local, betas, transl)
        e = terms["energy"] + head_down_penalty(posed.joints, up)
    e = e + _turn_penalty(local, init, s.turn_penalty)
    best = int(e.argmin())
    # How clearly the chosen orientation won: the energy gap to the best candidate turned more
    # than 90 deg from it (1.0 when none was kept), and how far the fit turned from its start.
    far = [k for k in range(len(e)) if _angle(local[k, 0], local[best, 0]) > np.pi / 2]
    margin = float(min(e[k] for k in far) - e[best]) if far else 1.0
    turned = float(np.degrees(_angle(local[best, 0], init[0][0].to(dev, dtype)))) if init is not None else 0.0
    local, betas, transl = local[best:best + 1], betas[best:best + 1], transl[best:best + 1]
    if s.iterations > 0:  # fine: the dense, point-to-plane data term
        fine = replace(s.energy, data_points=s.dense_data_points, model_points=s.dense_model_points)
        if s.dense_tangent_weight is not None:
            fine = replace(fine, tangent_weight=s.dense_tangent_weight)
        dense = BodyEnergy(body, points.to(dev, dtype), fine, viewpoint=viewpoint, seed=s.seed)
        local, betas, transl = polish(body, dense, local, betas, transl, s)
    with torch.no_grad():
        terms = energy.pose_terms(body, local, betas, transl)[0]
    out = {k: float(v[0]) for k, v in terms.items() if k != "energy"}
    out.update(flip_margin=margin, turned_deg=turned)
    return OptimizationResult(local[0], betas[0], transl[0], float(terms["energy"][0]), out)


@torch.no_grad()
def check_orientation(body: BodyModel, points: torch.Tensor, local: torch.Tensor, betas: torch.Tensor,
                      transl: torch.Tensor, extra_roots: torch.Tensor | None = None,
                      viewpoint: np.ndarray | None = None, settings: EnergySettings | None = None,
                      up: np.ndarray | None = None, rigid_iterations: int = 6, group: str = "octahedral",
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The network's orientation check: its root turned by every element of ``group``
    ("identity": ICP only; "long_axis": and 180 deg about the body's long axis; "flips": and
    180 deg about each body axis; or a rotation group's name) and ``extra_roots``, each with the
    network's joint rotations, rigidly aligned by the torso, ranked by the torso's
    energy (plus a penalty for a head-down body when ``up`` is given); returns the best local
    (24,3,3), transl (3,) and the whole body's energy terms, with ``margin``: how much worse
    the best candidate turned more than 90 deg from it scored (small: ambiguous)."""
    s = OptimizationSettings(keep=1, rigid_iterations=rigid_iterations, sweeps=0, iterations=0, seed=seed,
                             energy=settings or EnergySettings())
    dev, dtype = body.device, body.v_template.dtype
    energy = BodyEnergy(body, points.to(dev, dtype), s.energy, viewpoint=viewpoint, seed=seed)
    torso = BodyEnergy(body, points.to(dev, dtype), s.energy, viewpoint=viewpoint, seed=seed, joints=TORSO_JOINTS)
    from posekit.geometry.rotation_groups import rotation_group

    # The octahedral group holds the identity and the three flips; its 24 turns of the network's
    # root leave no orientation more than 63 deg from a start.
    if group == "identity":
        turns = torch.eye(3, device=dev, dtype=dtype)[None]
    elif group == "flips":
        turns = torch.as_tensor(np.concatenate([np.eye(3)[None], FLIPS]), device=dev, dtype=dtype)
    elif group == "long_axis":  # the front/back flip: 180 deg about the body's long (y) axis
        turns = torch.as_tensor(np.stack([np.eye(3), FLIPS[1]]), device=dev, dtype=dtype)
    else:
        turns = torch.as_tensor(rotation_group(group).elements, device=dev, dtype=dtype)
    roots = [local[0] @ turns]
    if extra_roots is not None and len(extra_roots) and group != "identity":
        roots.append(extra_roots.to(dev, dtype))
    roots = torch.cat(roots)
    K = len(roots)
    L, b, t = _pose_batch(local[None], betas[None], transl[None], K)
    pelvis = body(L[:1], b[:1], t[:1]).joints[0, 0]
    R = roots @ local[0].T
    L, t = set_root(body, L, b, t, R, pelvis - (R @ pelvis[:, None])[..., 0])
    first = min(rigid_iterations, 3) if K > 2 else rigid_iterations
    L, t = rigid_align(body, torso, L, b, t, first)
    if first < rigid_iterations:  # coarse to fine: the 2 best distinct candidates go on (fit's latency)
        terms, out = torso.pose_terms(body, L, b, t, shape_prior=False)
        keep = diverse_best(_data_energy(terms) + head_down_penalty(out.joints, up), L[:, 0], 2)
        L, b, t = L[keep], b[keep], t[keep]
        L, t = rigid_align(body, torso, L, b, t, rigid_iterations - first)
    terms, out = torso.pose_terms(body, L, b, t, shape_prior=False)
    score = _data_energy(terms) + head_down_penalty(out.joints, up)
    best = int(score.argmin())
    ranked = score.argsort()
    terms = energy.pose_terms(body, L[best:best + 1], b[:1], t[best:best + 1])[0]
    info = {k: float(v[0]) for k, v in terms.items()}
    info["candidates"] = K
    # The runner-up among candidates turned more than 90 deg from the winner: how ambiguous it was.
    far = [int(k) for k in ranked[1:] if _angle(L[int(k), 0], L[best, 0]) > np.pi / 2]
    info["margin"] = float(score[far[0]] - score[best]) if far else 1.0
    return L[best], t[best], info


def upright_roots(up: np.ndarray, n: int) -> np.ndarray:
    """(n,3,3) root rotations of a body standing along ``up`` (its y axis), facing n headings evenly about it."""
    u = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    helper = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    a = helper - (helper @ u) * u
    a /= np.linalg.norm(a)
    b = np.cross(a, u)
    out = []
    for theta in 2 * np.pi * np.arange(n) / n:
        z = np.cos(theta) * a + np.sin(theta) * b
        out.append(np.stack([np.cross(u, z), u, z], axis=1))  # columns: body x (left), y (up), z (forward)
    return np.asarray(out)


def head_down_penalty(joints: torch.Tensor, up: np.ndarray | None) -> torch.Tensor | float:
    """(K,) energy penalty of bodies (joints (K,24,3)) whose pelvis-to-neck axis points against ``up``
    (1 m per unit of negative cosine: any head-down candidate loses); 0 without ``up``."""
    if up is None:
        return 0.0
    u = torch.as_tensor(np.asarray(up, dtype=np.float64) / np.linalg.norm(up), device=joints.device,
                        dtype=joints.dtype)
    spine = joints[:, 12] - joints[:, 0]
    return torch.relu(-(spine @ u) / spine.norm(dim=-1).clamp_min(1e-6))


def _data_energy(terms: dict) -> torch.Tensor:
    """The energy without its priors (the torso's ranking: it was scored without local rotations)."""
    return terms["energy"] - terms["prior"]


def _turn_penalty(local: torch.Tensor, init, penalty: float) -> torch.Tensor | float:
    """(K,) ``penalty`` for candidates (local (K,24,3,3)) whose root is turned more than 90 deg from
    ``init``'s (refinement): turning the network's body over must be earned - on one-sided clouds
    a body and its flip differ by less than a centimetre of energy, and the network is right
    more often than not. 0 for the baseline (no ``init``)."""
    if init is None or not penalty:
        return 0.0
    start = init[0][0].to(local.device, local.dtype)
    turned = [float(_angle(local[k, 0], start) > np.pi / 2) for k in range(local.shape[0])]
    return penalty * torch.as_tensor(turned, device=local.device, dtype=local.dtype)


def _angle(Ra: torch.Tensor, Rb: torch.Tensor) -> float:
    c = (torch.trace(Ra.T @ Rb) - 1) / 2
    return float(torch.arccos(c.clamp(-1, 1)))


__all__ = ["FLIPS", "SEARCH_JOINTS", "OptimizationResult", "OptimizationSettings", "check_orientation", "diverse_best",
           "fit_by_optimization", "head_down_penalty", "joint_search", "label_neighbourhood", "part_icp", "polish", "rigid_align", "set_root", "upright_roots"]
