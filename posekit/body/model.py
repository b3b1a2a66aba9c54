"""The SMPL body model format, with linear blend skinning and forward kinematics in torch.

Written from the published equations (Loper et al., "SMPL: A Skinned Multi-Person Linear
Model", SIGGRAPH Asia 2015, eqs. 2-10), not from the smplx package:

- shape blend shapes  ``v_shaped = v_template + shapedirs . betas``            (eq. 8)
- rest joints          ``J = J_regressor v_shaped``                            (eq. 10)
- pose blend shapes    ``v_posed = v_shaped + posedirs . vec(R_1..23 - I)``    (eq. 9)
- forward kinematics   ``G_k = G_parent(k) [R_k | J_k - J_parent(k)]``         (eq. 4)
- skinning             ``v = sum_k w_k G_k [I | -J_k] v_posed`` (+ translation) (eq. 2-3)

A model file holds ``v_template (V,3)``, ``shapedirs (V,3,B)``, ``posedirs (V,3,207)``,
``J_regressor (24,V)``, ``weights (V,24)``, ``kintree_table (2,24)`` and ``f (F,3)``: a
licensed SMPL ``.npz`` loads as it is; the procedural default (:mod:`posekit.body.procedural`)
is written in the same format. Units: metres; pose rotations are local (parent frame).
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posekit.body.skeleton import JOINT_NAMES, MERGED_JOINTS, N_JOINTS, joint_to_part
from posekit.errors import BadInputError, CorruptFileError, MissingFileError, UnsafeFileError

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "default_body"
MODELS_DIR = Path(__file__).resolve().parent / "models"
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


def default_body_model_path() -> Path:
    """The committed procedural body model (``posekit/body/models/default_body.npz``)."""
    return MODELS_DIR / f"{DEFAULT_MODEL_NAME}.npz"


@dataclass
class BodyOutput:
    """A posed body: vertices (B,V,3), joints (B,24,3) and global joint transforms (B,24,4,4), metres."""

    vertices: torch.Tensor
    joints: torch.Tensor
    transforms: torch.Tensor

    @property
    def global_rotations(self) -> torch.Tensor:
        """(B,24,3,3): each joint's rotation in the world frame (product of local rotations up the chain)."""
        return self.transforms[..., :3, :3]


def _dense(value, key: str) -> np.ndarray:
    """A numpy array from a file value (scipy sparse J_regressor, chumpy stand-in, array)."""
    if hasattr(value, "toarray"):
        value = value.toarray()
    if isinstance(value, _ChumpyStandIn):
        value = value.array()
    try:
        return np.asarray(value)
    except Exception as err:
        raise CorruptFileError(f"body model key {key!r} is not an array ({type(value).__name__})") from err


def check_body_arrays(arrays: dict, source: str = "body model") -> dict[str, np.ndarray]:
    """Validate SMPL-format arrays (keys, shapes, finiteness, tree); return them as clean numpy arrays."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise CorruptFileError(
            f"{source}: missing key(s) {missing}; an SMPL-format model needs {list(REQUIRED_KEYS)} "
            "(make one with `posekit body make-model --out FILE.npz`)"
        )
    a = {k: _dense(arrays[k], k) for k in REQUIRED_KEYS}
    for k in REQUIRED_KEYS:
        if a[k].dtype.kind not in "fiu":
            raise CorruptFileError(f"{source}: {k!r} must be numeric, got dtype {a[k].dtype}")
    v = a["v_template"]
    if v.ndim != 2 or v.shape[1] != 3 or len(v) < 4:
        raise CorruptFileError(f"{source}: v_template must be (V,3) with V >= 4, got {v.shape}")
    n_v = len(v)
    expect = {
        "shapedirs": (n_v, 3, None), "posedirs": (n_v, 3, 9 * (N_JOINTS - 1)),
        "J_regressor": (N_JOINTS, n_v), "weights": (n_v, N_JOINTS), "kintree_table": (2, N_JOINTS),
        "f": (None, 3),
    }
    for key, shape in expect.items():
        got = a[key].shape
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
            want = "x".join("?" if s is None else str(s) for s in shape)
            raise CorruptFileError(f"{source}: {key!r} has shape {got}, expected ({want}) for V={n_v}")
    if a["shapedirs"].shape[2] < 1:
        raise CorruptFileError(f"{source}: shapedirs has no shape components")
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        if not np.isfinite(a[key]).all():
            raise CorruptFileError(f"{source}: {key!r} contains NaN or inf")
    faces = a["f"]
    if faces.min() < 0 or faces.max() >= n_v:
        raise CorruptFileError(f"{source}: faces 'f' index vertices outside 0..{n_v - 1}")
    parents = a["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    if any(not (0 <= parents[j] < j) for j in range(1, N_JOINTS)):
        raise CorruptFileError(f"{source}: kintree_table must list each joint's parent before it")
    sums = a["weights"].sum(axis=1)
    if np.abs(sums - 1).max() > 1e-3:
        raise CorruptFileError(f"{source}: skinning weights of each vertex must sum to 1 (max error "
                               f"{np.abs(sums - 1).max():.3g})")
    out = {k: a[k].astype(np.float32) for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights")}
    out["f"] = faces.astype(np.int64)
    out["parents"] = parents
    return out


class _ChumpyStandIn:
    """Receives a pickled chumpy array so SMPL ``.pkl`` files load without chumpy installed."""

    def __init__(self, *args, **kwargs):
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def array(self) -> np.ndarray:
        state = self.state if isinstance(self.state, dict) else {}
        for key in ("x", "a", "_x"):
            if key in state:
                return _dense(state[key], key)
        raise CorruptFileError("a chumpy array in the .pkl has no stored value; convert the file to .npz")


class _SmplUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("chumpy"):
            return _ChumpyStandIn
        return super().find_class(module, name)


def read_body_arrays(path: str | Path, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """Arrays of an SMPL-format model file (``.npz``; ``.pkl`` only with ``allow_pickle=True``), validated."""
    from posekit.io.weights import load_npz

    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"body model file not found: {path}")
    if path.suffix.lower() in (".pkl", ".pickle"):
        if not allow_pickle:
            raise UnsafeFileError(
                f"{path}: a .pkl body model is a pickle, which can run arbitrary code; pass "
                "allow_pickle=True (CLI: --allow-pickle) only for a file you trust, or convert it to .npz"
            )
        logger.warning("%s: unpickling a body model (allow_pickle=True)", path)
        try:
            with open(path, "rb") as fh:
                raw = _SmplUnpickler(fh, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as err:
            raise CorruptFileError(f"{path}: cannot unpickle the body model ({err})") from err
        if not isinstance(raw, dict):
            raise CorruptFileError(f"{path}: expected a dict of arrays, got {type(raw).__name__}")
    else:
        raw = load_npz(path, allow_pickle=False)
    return check_body_arrays(raw, source=str(path))


class BodyModel(torch.nn.Module):
    """An SMPL-format body model: ``forward(pose, betas, transl) -> BodyOutput``, batched and differentiable.

    Build with :meth:`from_file` / :func:`load_body_model`, or from validated arrays. ``n_betas``
    keeps the first shape components (default: all, at most 10). Move with ``.to(device)``.
    """

    def __init__(self, arrays: dict, n_betas: int = 10, name: str = ""):
        super().__init__()
        a = check_body_arrays(arrays) if "parents" not in arrays else arrays
        n_betas = int(min(n_betas, a["shapedirs"].shape[2]))
        self.name = name
        self.n_betas = n_betas
        self.parents = [int(p) for p in a["parents"]]
        self.faces = np.asarray(a["f"], dtype=np.int64)
        self.register_buffer("v_template", torch.from_numpy(a["v_template"]))
        self.register_buffer("shapedirs", torch.from_numpy(np.ascontiguousarray(a["shapedirs"][:, :, :n_betas])))
        posedirs = a["posedirs"]
        self.has_pose_correctives = bool(np.abs(posedirs).max() > 0)
        flat = posedirs.reshape(-1, posedirs.shape[2]).T if self.has_pose_correctives else np.zeros((0, 0), np.float32)
        self.register_buffer("posedirs", torch.from_numpy(np.ascontiguousarray(flat)))  # (207, V*3)
        self.register_buffer("J_regressor", torch.from_numpy(a["J_regressor"]))
        self.register_buffer("weights", torch.from_numpy(a["weights"]))
        self._arrays = a

    @classmethod
    def from_file(cls, path: str | Path | None = None, n_betas: int = 10, allow_pickle: bool = False,
                  device: str = "cpu") -> BodyModel:
        path = default_body_model_path() if path is None else Path(path)
        return cls(read_body_arrays(path, allow_pickle), n_betas=n_betas, name=path.stem).to(device)

    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def device(self) -> torch.device:
        return self.v_template.device

    @property
    def joint_names(self) -> tuple[str, ...]:
        return JOINT_NAMES

    def vertex_parts(self) -> np.ndarray:
        """(V,) int: part label of each vertex (argmax skinning weight; hands->wrists, feet->ankles)."""
        joint = self.weights.argmax(dim=1).cpu().numpy()
        return joint_to_part()[joint]

    def vertex_joints(self) -> np.ndarray:
        """(V,) int: the joint of largest skinning weight of each vertex, merged joints mapped to parents."""
        joint = self.weights.argmax(dim=1).cpu().numpy()
        return np.array([MERGED_JOINTS.get(int(j), int(j)) for j in joint], dtype=np.int64)

    def rest_normals(self) -> torch.Tensor:
        """(V,3) unit normals of the template mesh (:func:`vertex_normals`)."""
        faces = torch.as_tensor(self.faces, device=self.device)
        return vertex_normals(self.v_template[None], faces)[0]

    def rest_joints(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """Rest-pose joints (B,24,3) for betas (B,n_betas) (or the template's (1,24,3))."""
        return torch.einsum("jv,bvc->bjc", self.J_regressor, self.shaped_vertices(betas))

    def shaped_vertices(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """(B,V,3): v_template + shapedirs . betas (eq. 8)."""
        if betas is None:
            return self.v_template[None]
        return self.v_template[None] + torch.einsum("bl,vcl->bvc", betas[:, : self.n_betas], self.shapedirs)

    def forward(self, pose: torch.Tensor | None = None, betas: torch.Tensor | None = None,
                transl: torch.Tensor | None = None, vertex_ids: torch.Tensor | None = None) -> BodyOutput:
        """Pose the body.

        pose: local joint rotations, (B,24,3,3) matrices or (B,24,3) / (B,72) axis-angle (rad);
        betas: (B,n_betas) (fewer columns are zero-padded); transl: (B,3) metres added to
        every vertex and joint. Any of them may be None (zeros); B is taken from those given.
        vertex_ids (M,) long: skin only these vertices (``vertices`` is then (B,M,3); the
        joints still come from the whole shaped mesh) - optimisers need a subset, many times.
        """
        dev, dtype = self.v_template.device, self.v_template.dtype
        batch = next((x.shape[0] for x in (pose, betas, transl) if x is not None), 1)
        if pose is None:
            rot = torch.eye(3, device=dev, dtype=dtype).expand(batch, N_JOINTS, 3, 3)
        elif pose.dim() == 4 and pose.shape[1:] == (N_JOINTS, 3, 3):
            rot = pose
        elif pose.shape[1:] in ((N_JOINTS, 3), (N_JOINTS * 3,)):
            from posekit.geometry.so3 import so3_exp

            rot = so3_exp(pose.reshape(batch, N_JOINTS, 3))
        else:
            raise BadInputError(f"pose must be (B,24,3,3) or (B,24,3) or (B,72), got {tuple(pose.shape)}")
        if betas is not None and betas.shape[-1] < self.n_betas:
            betas = torch.nn.functional.pad(betas, (0, self.n_betas - betas.shape[-1]))
        if betas is not None and betas.shape[0] != batch:
            betas = betas.expand(batch, -1)
        v_shaped = self.shaped_vertices(betas).expand(batch, -1, -1)
        J = torch.einsum("jv,bvc->bjc", self.J_regressor, v_shaped)
        v_posed = v_shaped
        if self.has_pose_correctives:
            eye = torch.eye(3, device=dev, dtype=dtype)
            feature = (rot[:, 1:] - eye).reshape(batch, -1)
            v_posed = v_shaped + (feature @ self.posedirs).reshape(batch, -1, 3)
        skin = self.weights
        if vertex_ids is not None:
            v_posed, skin = v_posed[:, vertex_ids], skin[vertex_ids]
        # Forward kinematics (eq. 4): parents precede children in the tree.
        chain_R, chain_t = [rot[:, 0]], [J[:, 0]]
        for k in range(1, N_JOINTS):
            p = self.parents[k]
            chain_R.append(chain_R[p] @ rot[:, k])
            chain_t.append(chain_t[p] + (chain_R[p] @ (J[:, k] - J[:, p])[..., None])[..., 0])
        G_R = torch.stack(chain_R, dim=1)  # (B,24,3,3)
        G_t = torch.stack(chain_t, dim=1)  # (B,24,3): posed joints
        # Skinning (eq. 2-3): A_k = G_k [I | -J_k], blended per vertex.
        A_t = G_t - (G_R @ J[..., None])[..., 0]
        A = torch.cat([G_R.reshape(batch, N_JOINTS, 9), A_t], dim=-1)  # (B,24,12)
        T = torch.einsum("vk,bkc->bvc", skin, A)
        T_R = T[..., :9].reshape(batch, -1, 3, 3)
        verts = (T_R * v_posed[:, :, None, :]).sum(-1) + T[..., 9:]
        joints = G_t
        if transl is not None:
            verts = verts + transl[:, None]
            joints = joints + transl[:, None]
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], device=dev, dtype=dtype).expand(batch, N_JOINTS, 1, 4)
        transforms = torch.cat([torch.cat([G_R, joints[..., None]], dim=-1), bottom], dim=-2)
        return BodyOutput(verts, joints, transforms)

    def save(self, path: str | Path) -> Path:
        """Write this model's arrays as an SMPL-format ``.npz`` (atomically)."""
        return save_body_arrays(self._arrays, path)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit normals (...,V,3) of a triangle mesh's vertices (...,V,3): the area-weighted mean of
    the normals of the faces (F,3) around each vertex (outward for counter-clockwise faces)."""
    a, b, c = (vertices[..., faces[:, k], :] for k in range(3))
    face = torch.linalg.cross(b - a, c - a)  # (...,F,3), length = twice the area
    out = torch.zeros_like(vertices)
    for k in range(3):
        out = out.index_add(-2, faces[:, k], face)
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def save_body_arrays(arrays: dict, path: str | Path) -> Path:
    """Write SMPL-format arrays to ``path`` (.npz, compressed, no pickled objects), atomically."""
    from posekit.body.skeleton import kintree_table
    from posekit.io.atomic import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise BadInputError(f"body models are written as .npz, got {path.name!r}")
    out = {k: np.asarray(arrays[k]) for k in REQUIRED_KEYS if k != "kintree_table"}
    out["kintree_table"] = np.asarray(arrays.get("kintree_table", kintree_table()))
    out.update({k: np.asarray(v) for k, v in arrays.items() if k not in out and k != "parents"
                and np.asarray(v).dtype != object})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # creates the folder (OutputPathError)
        np.savez_compressed(fh, **out)
    return path


def load_body_model(path: str | Path | None = None, device: str = "cpu", allow_pickle: bool = False,
                    n_betas: int = 10) -> BodyModel:
    """The body model at ``path`` (SMPL-format .npz; .pkl with ``allow_pickle``), or the default one."""
    return BodyModel.from_file(path, n_betas=n_betas, allow_pickle=allow_pickle, device=device)


__all__ = [
    "REQUIRED_KEYS",
    "BodyModel",
    "BodyOutput",
    "check_body_arrays",
    "default_body_model_path",
    "load_body_model",
    "read_body_arrays",
    "save_body_arrays",
    "vertex_normals",
]
