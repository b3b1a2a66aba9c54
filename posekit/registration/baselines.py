"""Classical registration peers of the diffusion engine, and the one place ICP lives.

Every peer has one signature, so the benchmark runs them side by side on the same inputs::

    T_cam_model, info = register_<name>(model_points, model_normals, observed_points, diameter, rng=None)

* ``model_points (M, 3)`` metres in the model frame, ``model_normals (M, 3)`` unit outward
  normals (or None: estimated and pointed away from the centroid);
* ``observed_points (N, 3)`` metres in the camera frame: the segmented object;
* ``diameter`` metres (the object's, as models_info.json gives it): every voxel size,
  radius and distance threshold is a fixed fraction of it, so one setting fits objects of
  any size;
* returns ``T_cam_model (4, 4)`` float64 (``x_cam = R x_model + t``) and an ``info`` dict
  (``fitness``: fraction of observed points with a model point within the final ICP
  threshold, ``inlier_rmse`` metres, ``time_ms``, and per-method extras).

Internally the observed cloud is the ICP *source* and the model the *target*: each
observed point looks for its nearest model point, which exists because the view is a part
of the model surface (the other way round, hidden model points would pull at the
estimate). Point-to-plane ICP (Chen & Medioni 1992) uses the model's normals.

Peers:

* :func:`register_open3d_fpfh_ransac_icp`: FPFH features (Rusu et al., ICRA 2009), RANSAC
  on mutual feature matches with edge-length and distance checkers, then point-to-plane
  ICP; the model's downsampled cloud and features are cached per model.
* :func:`register_open3d_icp`: point-to-plane ICP from the centroid offset with the
  identity rotation, coarse to fine.
* :func:`register_small_gicp`: generalised ICP (Segal et al., RSS 2009) of the
  ``small_gicp`` package (Koide 2024) from the same start; optional, imported lazily
  (:func:`small_gicp_available`).

:func:`refine_icp` polishes any estimate (the diffusion engine's optional refinement).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from posekit.errors import BadInputError
from posekit.validation import MAX_PLAUSIBLE_DEPTH_M, check_points, check_pose, check_positive

# Fewer observed points than this cannot pin down 6 degrees of freedom against noise.
MIN_OBSERVED_POINTS = 10
# A model needs enough surface samples for features and nearest neighbours.
MIN_MODEL_POINTS = 30


@dataclass(frozen=True)
class FpfhRansacSettings:
    """FPFH + RANSAC + ICP, every length a fraction of the object diameter d.

    Tuned on held-out procedural scenes (640x480, Kinect noise model, oracle masks; dataset
    seed 20 000, not the benchmark's): voxels of d/10 ... d/40 gave ADD(-S) recalls of
    0.67-0.78 with d/20 best, feature radii of 3 and 8 voxels, a 1-voxel RANSAC distance and
    a 10x RANSAC budget did not help; a final ICP on the camera-facing model surface from
    10 % down to 1 % of d helped a little. Radii follow Open3D's global-registration
    tutorial (normals 2 voxels, FPFH 5 voxels, RANSAC inlier distance 1.5 voxels).
    """

    voxel_fraction: float = 1.0 / 20.0
    normal_radius_voxels: float = 2.0
    feature_radius_voxels: float = 5.0
    ransac_distance_voxels: float = 1.5
    edge_length_similarity: float = 0.9
    ransac_max_iterations: int = 100_000
    ransac_confidence: float = 0.999
    icp_distance_fractions: tuple[float, ...] = (0.1, 0.03, 0.01)
    icp_iterations: int = 30
    icp_facing_only: bool = True


@dataclass(frozen=True)
class IcpSettings:
    """Coarse-to-fine point-to-plane ICP: one stage per correspondence distance (fractions of
    the diameter), each ``iterations`` long; the observed cloud is downsampled to
    ``voxel_fraction`` of the diameter; ``robust``: Tukey loss with the stage's distance;
    ``facing_only``: align to the model surface facing the camera in the start pose."""

    distance_fractions: tuple[float, ...] = (1.0, 0.3, 0.1, 0.03)
    iterations: int = 30
    voxel_fraction: float = 1.0 / 50.0
    robust: bool = False
    facing_only: bool = False


# From the centroid: a first stage as wide as the object (the widest schedule tried was the
# best), no robust kernel (it would freeze the far start), the whole model (the start pose
# says nothing about which side faces the camera).
CENTROID_ICP = IcpSettings()
# Refinement of an estimate that is already close: narrow stages, Tukey kernel against
# background points left by imperfect masks, camera-facing model surface only. On GT poses
# perturbed by 15 deg and 0.1 d it lifted ADD(-S) recall from 0.71 to 1.00 and rotation
# recall at 5 deg from 0.04 to 0.87 (median error 1.0 deg).
REFINE_ICP = IcpSettings(distance_fractions=(0.06, 0.02), iterations=30, robust=True, facing_only=True)


# ----------------------------------------------------------------------------- inputs


def check_registration_inputs(model_points, model_normals, observed_points, diameter):
    """Validated (model (M, 3), normals (M, 3) or None, observed (N, 3), diameter) as float64.

    BadInputError for empty or tiny clouds, NaN/inf, mismatched normals, a non-positive
    diameter and clouds in millimetres where metres are expected.
    """
    model = check_points(model_points, "model points")
    observed = check_points(observed_points, "observed points")
    diameter = check_positive(diameter, "object diameter (metres)")
    if len(model) < MIN_MODEL_POINTS:
        raise BadInputError(f"model has {len(model)} points; need at least {MIN_MODEL_POINTS} surface samples")
    if len(observed) < MIN_OBSERVED_POINTS:
        raise BadInputError(
            f"observed cloud has {len(observed)} points; need at least {MIN_OBSERVED_POINTS} "
            "(is the mask empty or the object out of the sensor's range?)"
        )
    if np.abs(observed).max() > MAX_PLAUSIBLE_DEPTH_M:
        raise BadInputError(
            f"observed points reach {np.abs(observed).max():g} from the camera; posekit works in metres "
            "and these look like millimetres (multiply by 0.001)"
        )
    if diameter > 10.0 or np.ptp(model, axis=0).max() > 10.0:
        raise BadInputError(
            f"model diameter {diameter:g} / extent {np.ptp(model, axis=0).max():g}: objects are "
            "given in metres and this looks like millimetres (multiply by 0.001)"
        )
    normals = None
    if model_normals is not None:
        normals = check_points(model_normals, "model normals")
        if normals.shape != model.shape:
            raise BadInputError(f"model normals {normals.shape} must match model points {model.shape}")
    return model, normals, observed, diameter


def _cloud(points: np.ndarray, normals: np.ndarray | None = None):
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)))
    if normals is not None:
        pcd.normals = o3d.utility.Vector3dVector(np.asarray(normals, dtype=np.float64))
    return pcd


def _estimate_normals(pcd, radius: float, towards_camera: bool) -> None:
    """Normals from local PCA over open3d's hybrid search (at most 30 neighbours in ``radius``);
    observed ones point at the camera (origin), model ones away from the cloud's centroid."""
    import open3d as o3d

    from posekit.geometry.normals import estimate_normals

    towards = "camera" if towards_camera else "outward"
    pcd.normals = o3d.utility.Vector3dVector(estimate_normals(np.asarray(pcd.points), towards, k=30, radius=radius))


def _model_cloud(model: np.ndarray, normals: np.ndarray | None, diameter: float):
    pcd = _cloud(model, normals)
    if normals is None:
        _estimate_normals(pcd, 0.05 * diameter, towards_camera=False)
    return pcd


def _invert(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def _centroid_start(model: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """T_model_cam with the identity rotation that puts the observed centroid on the model's."""
    T = np.eye(4)
    T[:3, 3] = model.mean(0) - observed.mean(0)
    return T


# Model-side preprocessing (downsampling, normals, FPFH, KD-trees) depends only on the model
# and the settings: cached, as the diffusion engine caches its model features.
_MODEL_CACHE: OrderedDict = OrderedDict()
_MODEL_CACHE_SIZE = 64


def _model_key(kind: str, model: np.ndarray, normals: np.ndarray | None, *params) -> tuple:
    h = hashlib.blake2b(np.ascontiguousarray(model, dtype=np.float64).tobytes(), digest_size=16)
    if normals is not None:
        h.update(np.ascontiguousarray(normals, dtype=np.float64).tobytes())
    return (kind, h.hexdigest(), *params)


def _cached(key: tuple, build):
    if key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
        return _MODEL_CACHE[key]
    value = build()
    _MODEL_CACHE[key] = value
    while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
        _MODEL_CACHE.popitem(last=False)
    return value


# ----------------------------------------------------------------------------- ICP


def _point_to_plane_icp(source, target, T_target_source: np.ndarray, diameter: float,
                        settings: IcpSettings) -> tuple[np.ndarray, float, float]:
    """Coarse-to-fine point-to-plane ICP of ``source`` onto ``target`` (which has normals).

    Returns (T_target_source, fitness, inlier RMSE metres) of the last stage.
    """
    import open3d as o3d

    reg = o3d.pipelines.registration
    T = np.asarray(T_target_source, dtype=np.float64).copy()
    fitness, rmse = 0.0, float("inf")
    criteria = reg.ICPConvergenceCriteria(relative_fitness=1e-7, relative_rmse=1e-7,
                                          max_iteration=int(settings.iterations))
    for fraction in settings.distance_fractions:
        distance = fraction * diameter
        if settings.robust:
            method = reg.TransformationEstimationPointToPlane(reg.TukeyLoss(k=distance))
        else:
            method = reg.TransformationEstimationPointToPlane()
        result = reg.registration_icp(source, target, distance, T, method, criteria)
        if len(result.correspondence_set) < 3:
            break  # nothing within reach: keep the previous stage's answer
        T = np.asarray(result.transformation, dtype=np.float64).copy()
        fitness, rmse = float(result.fitness), float(result.inlier_rmse)
    return T, fitness, rmse


def _observed_cloud(observed: np.ndarray, voxel: float):
    pcd = _cloud(observed)
    down = pcd.voxel_down_sample(voxel)
    return down if len(down.points) >= MIN_OBSERVED_POINTS else pcd


def _icp_target(model: np.ndarray, normals: np.ndarray | None, diameter: float, T_cam_model: np.ndarray | None):
    """The model cloud ICP aligns to (with normals). Given a pose, only the points whose
    outward normal faces the camera in that pose: the surface a depth sensor can see, so
    back faces do not catch observed points at the rim."""
    full = _cached(_model_key("icp_target", model, normals, diameter),
                   lambda: _model_cloud(model, normals, diameter))
    if T_cam_model is None:
        return full
    nrm = np.asarray(full.normals)
    R, t = T_cam_model[:3, :3], T_cam_model[:3, 3]
    facing = ((model @ R.T + t) * (nrm @ R.T)).sum(1) < 0
    if facing.sum() < MIN_MODEL_POINTS:
        return full
    return _cloud(model[facing], nrm[facing])


def refine_icp(T_init, model_points, model_normals, observed_points, diameter,
               settings: IcpSettings = REFINE_ICP) -> np.ndarray:
    """Polish ``T_init`` (T_cam_model 4x4) by robust point-to-plane ICP; returns T_cam_model.

    ``model_points (M, 3)`` / ``model_normals (M, 3)`` metres in the model frame,
    ``observed_points (N, 3)`` metres in the camera frame, ``diameter`` metres. Two stages
    (correspondences within 6 % then 2 % of the diameter) with a Tukey kernel, so
    background points of an imperfect mask do not drag the pose, against the model surface
    that faces the camera in ``T_init`` (the part a sensor can see). Returns ``T_init``
    unchanged when no observed point lies within reach of the model.
    """
    T_init = check_pose(T_init, "T_init (T_cam_model)")
    model, normals, observed, diameter = check_registration_inputs(model_points, model_normals,
                                                                   observed_points, diameter)
    target = _icp_target(model, normals, diameter, T_init if settings.facing_only else None)
    source = _observed_cloud(observed, settings.voxel_fraction * diameter)
    T_model_cam, fitness, _ = _point_to_plane_icp(source, target, _invert(T_init), diameter, settings)
    if fitness == 0.0:
        return T_init
    return _invert(T_model_cam)


# ----------------------------------------------------------------------------- peers


def register_open3d_icp(model_points, model_normals, observed_points, diameter, rng=None,
                        settings: IcpSettings = CENTROID_ICP) -> tuple[np.ndarray, dict]:
    """Point-to-plane ICP (open3d) from the centroid offset, identity rotation.

    Stages with correspondences within 100 %, 30 %, 10 % and 3 % of the diameter. Local: it
    converges only when the object happens to be seen near the identity rotation.
    ``rng`` is unused (deterministic); it keeps the peers' common signature.
    """
    start = time.perf_counter()
    model, normals, observed, diameter = check_registration_inputs(model_points, model_normals,
                                                                   observed_points, diameter)
    target = _icp_target(model, normals, diameter, None)
    source = _observed_cloud(observed, settings.voxel_fraction * diameter)
    T_model_cam, fitness, rmse = _point_to_plane_icp(source, target, _centroid_start(model, observed),
                                                     diameter, settings)
    info = {"fitness": fitness, "inlier_rmse": rmse, "time_ms": 1e3 * (time.perf_counter() - start)}
    return _invert(T_model_cam), info


def _fpfh(pcd, voxel: float, settings: FpfhRansacSettings):
    import open3d as o3d

    return o3d.pipelines.registration.compute_fpfh_feature(
        pcd, o3d.geometry.KDTreeSearchParamHybrid(radius=settings.feature_radius_voxels * voxel, max_nn=100))


def _fpfh_model(model: np.ndarray, normals: np.ndarray | None, diameter: float, settings: FpfhRansacSettings):
    """Downsampled model cloud (with the mesh's normals, averaged per voxel) and its FPFH
    features. (PCA normals like the observed cloud's were tried: recall fell from 0.80 to
    0.69 on the tuning scenes.)"""
    voxel = settings.voxel_fraction * diameter
    down = _model_cloud(model, normals, diameter).voxel_down_sample(voxel)
    down.normalize_normals()
    return down, _fpfh(down, voxel, settings)


def register_open3d_fpfh_ransac_icp(model_points, model_normals, observed_points, diameter, rng=None,
                                    settings: FpfhRansacSettings = FpfhRansacSettings()) -> tuple[np.ndarray, dict]:
    """Global registration: FPFH + RANSAC (open3d), then point-to-plane ICP.

    Both clouds are downsampled to voxels of ``voxel_fraction * diameter``; observed normals
    are estimated and turned towards the camera, model normals come from the mesh. RANSAC
    draws 3 mutual-nearest feature matches, prunes them with the edge-length (0.9) and
    distance (1.5 voxels) checkers and stops at ``ransac_confidence``; ICP then aligns to
    the model surface facing the camera in the RANSAC pose. ``rng`` (Generator
    or int) seeds open3d's random generator, so a run is reproducible.
    """
    import open3d as o3d

    reg = o3d.pipelines.registration
    start = time.perf_counter()
    model, normals, observed, diameter = check_registration_inputs(model_points, model_normals,
                                                                   observed_points, diameter)
    seed = int(np.random.default_rng(rng).integers(2**31 - 1))
    o3d.utility.random.seed(seed)
    voxel = settings.voxel_fraction * diameter
    model_down, model_feat = _cached(_model_key("fpfh", model, normals, diameter, settings),
                                     lambda: _fpfh_model(model, normals, diameter, settings))
    obs = _cloud(observed).voxel_down_sample(voxel)
    if len(obs.points) < MIN_OBSERVED_POINTS:
        obs = _cloud(observed)
    _estimate_normals(obs, settings.normal_radius_voxels * voxel, towards_camera=True)
    obs_feat = _fpfh(obs, voxel, settings)
    distance = settings.ransac_distance_voxels * voxel
    # open3d warns when the mutual filter leaves few matches and then uses them all: expected
    # on small partial views, not worth a line per object
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        ransac = reg.registration_ransac_based_on_feature_matching(
            obs, model_down, obs_feat, model_feat, True, distance,
            reg.TransformationEstimationPointToPoint(False), 3,
            [reg.CorrespondenceCheckerBasedOnEdgeLength(settings.edge_length_similarity),
             reg.CorrespondenceCheckerBasedOnDistance(distance)],
            reg.RANSACConvergenceCriteria(settings.ransac_max_iterations, settings.ransac_confidence))
    t_ransac = time.perf_counter()
    T_model_cam = np.asarray(ransac.transformation, dtype=np.float64).copy()
    target = _icp_target(model, normals, diameter, _invert(T_model_cam) if settings.icp_facing_only else None)
    icp = IcpSettings(distance_fractions=settings.icp_distance_fractions, iterations=settings.icp_iterations)
    source = _observed_cloud(observed, icp.voxel_fraction * diameter)
    T_model_cam, fitness, rmse = _point_to_plane_icp(source, target, T_model_cam, diameter, icp)
    end = time.perf_counter()
    info = {"fitness": fitness, "inlier_rmse": rmse, "ransac_fitness": float(ransac.fitness),
            "ransac_correspondences": len(ransac.correspondence_set), "seed": seed,
            "ransac_ms": 1e3 * (t_ransac - start), "time_ms": 1e3 * (end - start)}
    return _invert(T_model_cam), info


def small_gicp_available() -> bool:
    """Whether the optional ``small_gicp`` package (PyPI: small-gicp) can be imported."""
    import importlib.util

    return importlib.util.find_spec("small_gicp") is not None


def register_small_gicp(model_points, model_normals, observed_points, diameter, rng=None,
                        distance_fractions: tuple[float, ...] = (1.0, 0.3, 0.1, 0.03),
                        voxel_fraction: float = 1.0 / 50.0, num_threads: int = 1,
                        max_iterations: int = 30) -> tuple[np.ndarray, dict]:
    """Generalised ICP of ``small_gicp`` from the centroid offset, identity rotation.

    Same start and coarse-to-fine correspondence distances as :func:`register_open3d_icp`;
    covariances from 10 neighbours after voxel downsampling to ``voxel_fraction`` of the
    diameter. ``model_normals`` and ``rng`` are unused (GICP uses covariances; it is
    deterministic). Raises BadInputError when small_gicp is not installed.
    """
    start = time.perf_counter()
    model, _, observed, diameter = check_registration_inputs(model_points, model_normals, observed_points, diameter)
    try:
        import small_gicp
    except ImportError as exc:
        raise BadInputError("register_small_gicp needs the optional package small-gicp "
                            "(pip install small-gicp)") from exc
    voxel = voxel_fraction * diameter
    target, tree = _cached(_model_key("small_gicp", model, None, voxel),
                           lambda: small_gicp.preprocess_points(model, downsampling_resolution=voxel,
                                                                num_neighbors=10, num_threads=num_threads))
    source, _ = small_gicp.preprocess_points(observed, downsampling_resolution=voxel, num_neighbors=10,
                                             num_threads=num_threads)
    T = _centroid_start(model, observed)
    n_inliers, error = 0, float("inf")
    for fraction in distance_fractions:
        result = small_gicp.align(target, source, tree, init_T_target_source=T, registration_type="GICP",
                                  max_correspondence_distance=fraction * diameter, num_threads=num_threads,
                                  max_iterations=max_iterations)
        if result.num_inliers < 3:
            break
        T = np.asarray(result.T_target_source, dtype=np.float64).copy()
        n_inliers, error = int(result.num_inliers), float(result.error)
    info = {"fitness": n_inliers / max(source.size(), 1), "gicp_error": error,
            "time_ms": 1e3 * (time.perf_counter() - start)}
    return _invert(T), info


def sample_model_cloud(mesh, n_points: int = 2048, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points (n, 3) float32 metres and unit outward normals (n, 3) float32 on a mesh's surface,
    area-uniform and reproducible by seed: the model cloud the peers register against."""
    points, normals = mesh.sample_points(n_points, seed=seed, return_normals=True)
    return points.astype(np.float32), normals.astype(np.float32)


# name -> registration function, in the benchmark's column order.
PEERS = {
    "open3d_fpfh_ransac_icp": register_open3d_fpfh_ransac_icp,
    "open3d_icp": register_open3d_icp,
    "small_gicp": register_small_gicp,
}
