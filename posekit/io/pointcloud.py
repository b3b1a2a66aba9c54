"""Point clouds: the one in-memory point cloud type of posekit, and file reading and writing.

Units: a :class:`PointCloud` is always in metres. Files in millimetres (BOP, some scanners)
are converted where they are read, with ``read_point_cloud(path, scale=0.001)``;
:func:`check_metric_units` catches the common mistake of forgetting to.

Formats: PLY through open3d (its failures, printed only, are caught); PCD (ascii, binary and
binary_compressed) by :mod:`posekit.io.pcd`; XYZ text, NPY and NPZ through numpy, never
unpickling (``allow_pickle=False``).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posekit.errors import (
    BadInputError,
    CorruptFileError,
    MissingFileError,
    PosekitError,
    UnitsWarning,
    UnsafeFileError,
    UnsupportedFormatError,
)
from posekit.io.atomic import atomic_path
from posekit.io.weights import NUMPY_PARSE_ERRORS
from posekit.validation import (
    MAX_PLAUSIBLE_COORDINATE_M,
    as_float_array,
    as_path,
    check_positive,
    valid_points_mask,
)

logger = logging.getLogger(__name__)

POINT_CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".npy", ".npz")


@dataclass
class PointCloud:
    """A point cloud in metres.

    points (N, 3) float32 metres, N >= 1, all finite; colors (N, 3) float32 RGB in [0, 1]
    or None; normals (N, 3) float32 or None. ``dropped_invalid`` counts the NaN/inf points
    removed when the cloud was read (organized sensor clouds mark missing depth that way).
    """

    points: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    dropped_invalid: int = 0

    def __post_init__(self) -> None:
        self.points = _as_xyz(self.points, "points")
        if len(self.points) == 0:
            raise BadInputError("point cloud is empty (0 points)")
        valid = valid_points_mask(self.points)
        if not valid.all():
            bad = int((~valid).sum())
            raise BadInputError(
                f"point cloud has {bad} of {len(self.points)} points with NaN, inf or coordinates "
                f"beyond {MAX_PLAUSIBLE_COORDINATE_M:g} m; drop them first "
                "(read_point_cloud(..., drop_invalid=True) does)"
            )
        if self.colors is not None:
            colors = np.asarray(self.colors)
            if np.issubdtype(colors.dtype, np.integer):
                raise BadInputError(
                    f"point colors must be float in [0, 1], got integer dtype {colors.dtype}; "
                    "divide uint8 colours by 255"
                )
            self.colors = _as_xyz(colors, "colors")
            if len(self.colors) != len(self.points):
                raise BadInputError(
                    f"point cloud has {len(self.points)} points but {len(self.colors)} colors"
                )
            if not np.isfinite(self.colors).all() or self.colors.min() < 0 or self.colors.max() > 1:
                raise BadInputError("point colors must be finite and within [0, 1]")
        if self.normals is not None:
            self.normals = _as_xyz(self.normals, "normals")
            if len(self.normals) != len(self.points):
                raise BadInputError(
                    f"point cloud has {len(self.points)} points but {len(self.normals)} normals"
                )

    def __len__(self) -> int:
        return len(self.points)

    def scaled(self, s: float) -> PointCloud:
        """This cloud with coordinates multiplied by s (unit conversion); normals unchanged."""
        s = check_positive(s, "scale")
        return PointCloud(
            self.points * np.float32(s), self.colors, self.normals, self.dropped_invalid
        )

    def to_open3d(self):
        import open3d as o3d

        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(self.points.astype(np.float64)))
        if self.colors is not None:
            pc.colors = o3d.utility.Vector3dVector(self.colors.astype(np.float64))
        if self.normals is not None:
            pc.normals = o3d.utility.Vector3dVector(self.normals.astype(np.float64))
        return pc


def _as_xyz(array, what: str) -> np.ndarray:
    a = as_float_array(array, f"point cloud {what}", (None, 3), finite=False)
    with np.errstate(over="ignore"):  # beyond float32's range becomes inf: reported as invalid
        return a.astype(np.float32)


def _split_invalid(points: np.ndarray, drop_invalid: bool, source: str) -> np.ndarray:
    """Boolean mask of valid points (finite, within 1e6 m); raises when some are not and
    dropping is not allowed."""
    valid = valid_points_mask(points)
    n_bad = int((~valid).sum())
    if n_bad and not drop_invalid:
        raise BadInputError(
            f"{source}: {n_bad} of {len(points)} points are NaN, inf (organized clouds mark "
            f"missing depth that way) or beyond {MAX_PLAUSIBLE_COORDINATE_M:g} m; pass "
            "drop_invalid=True to drop them"
        )
    return valid


def read_point_cloud(path: str | Path, scale: float = 1.0, drop_invalid: bool = True) -> PointCloud:
    """Read a point cloud file and multiply coordinates by ``scale`` (0.001 for files in mm).

    PLY and PCD (ascii, binary, binary_compressed) are read with open3d; XYZ (text, the first
    three columns of each line), NPY ((N, 3) or (N, >=3): the first three columns) and NPZ
    (key ``points``, optional ``colors`` and ``normals``) with numpy and no unpickling.
    NaN/inf points are dropped and counted in ``PointCloud.dropped_invalid`` (or raise
    BadInputError with ``drop_invalid=False``). An empty cloud raises BadInputError, a file
    that cannot be parsed CorruptFileError.
    """
    path = as_path(path, "point cloud path")
    if not path.is_file():
        raise MissingFileError(f"point cloud file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in POINT_CLOUD_SUFFIXES:
        raise UnsupportedFormatError(
            f"{path}: unsupported point cloud format {path.suffix!r}; use one of {list(POINT_CLOUD_SUFFIXES)}"
        )
    scale = check_positive(scale, "scale")

    if suffix == ".ply":
        points, colors, normals = _read_ply(path)
    elif suffix == ".pcd":
        points, colors, normals = _read_pcd(path)
    elif suffix == ".xyz":
        points, colors, normals = _read_xyz(path), None, None
    elif suffix == ".npy":
        points, colors, normals = _read_npy(path), None, None
    else:
        points, colors, normals = _read_npz(path)

    if len(points) == 0:
        raise BadInputError(f"{path}: the point cloud is empty (0 points)")
    valid = _split_invalid(points, drop_invalid, str(path))
    n_bad = int((~valid).sum())
    if n_bad:
        logger.info("%s: dropped %d of %d NaN/inf/far-off points", path, n_bad, len(points))
        points = points[valid]
        colors = None if colors is None else colors[valid]
        normals = None if normals is None else normals[valid]
        if len(points) == 0:
            raise BadInputError(f"{path}: all {n_bad} points are NaN, inf or far off; nothing left")
    if normals is not None and not np.isfinite(normals).all():
        normals = None  # some writers leave NaN normals on points without a neighbourhood
    cloud = PointCloud(points, colors, normals, dropped_invalid=n_bad)
    cloud = cloud.scaled(scale) if scale != 1.0 else cloud
    _warn_if_not_metres(cloud.points, path, scale)
    return cloud


# A cloud read as metres whose bounding box is larger than this is almost surely in
# millimetres (a depth camera sees a few metres; a 99 "m" object is a 99 mm one).
MAX_PLAUSIBLE_EXTENT_M = 20.0


def _warn_if_not_metres(points: np.ndarray, path: Path, scale: float) -> None:
    extent = float((points.max(axis=0) - points.min(axis=0)).max())
    if extent > MAX_PLAUSIBLE_EXTENT_M:
        hint = (" it looks like millimetres: read it with scale=0.001" if extent * 1e-3 <= MAX_PLAUSIBLE_EXTENT_M
                else " check its units")
        warnings.warn(
            f"{path}: the point cloud spans {extent:.4g} m (after scale={scale:g}); posekit works in "
            f"metres and{hint}", UnitsWarning, stacklevel=3)


class CapturedNativeOutput:
    """Capture what native code prints to stdout/stderr (file descriptors 1 and 2) while the block runs.

    The captured text is in ``.text`` afterwards and is passed on to the debug log.
    """

    def __enter__(self):
        import sys

        self.text = ""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, ValueError):
                pass
        self._file = tempfile.TemporaryFile(mode="w+b")
        self._saved = [os.dup(1), os.dup(2)]
        os.dup2(self._file.fileno(), 1)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        self._file.seek(0)
        self.text = re.sub(r"\x1b\[[0-9;]*m", "", self._file.read().decode("utf-8", "replace"))
        self._file.close()
        if self.text:
            logger.debug("open3d: %s", self.text.strip())


# What open3d prints when its parse failed (it may still return what it had allocated).
_OPEN3D_FAILURE = re.compile(r"(?i)(read \w+ failed|error reading|unexpected end of file)[^\n]*")


def raise_on_open3d_failure(path: Path, native_text: str) -> None:
    """CorruptFileError when open3d's printed output says that reading ``path`` failed."""
    failure = _OPEN3D_FAILURE.search(native_text)
    if failure:
        raise CorruptFileError(
            f"{path}: cannot be parsed ({failure.group(0).strip()}); truncated or corrupt file"
        )


def _read_ply(path: Path):
    import open3d as o3d

    from posekit.io.ply import check_ply

    expected = check_ply(path).count("vertex")  # a body that disagrees with its header can crash open3d
    if expected == 0:
        return np.zeros((0, 3), np.float32), None, None
    with CapturedNativeOutput() as native:
        pc = o3d.io.read_point_cloud(
            str(path), remove_nan_points=False, remove_infinite_points=False
        )
    # open3d reports a failed parse only as a printed warning, and may still return the points
    # it had allocated (uninitialised memory for a truncated PLY): treat that warning as fatal.
    raise_on_open3d_failure(path, native.text)
    points = np.asarray(pc.points, dtype=np.float64)
    if len(points) != expected:
        raise CorruptFileError(
            f"{path}: header announces {expected} points but only {len(points)} could be read "
            "(truncated or corrupt file)"
        )
    colors = np.asarray(pc.colors, dtype=np.float32) if pc.has_colors() else None
    normals = _to_float32(np.asarray(pc.normals)) if pc.has_normals() else None
    return _to_float32(points), colors, normals


def _to_float32(points: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # out-of-range values become inf and count as invalid
        return points.astype(np.float32)


def _read_pcd(path: Path):
    from posekit.io.pcd import read_pcd

    points, colors, normals = read_pcd(path)
    return _to_float32(points), colors, None if normals is None else _to_float32(normals)


def _read_xyz(path: Path) -> np.ndarray:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": handled below
            data = np.loadtxt(path, dtype=np.float64, ndmin=2, comments="#")
    except ValueError as err:
        raise CorruptFileError(f"{path}: not a valid XYZ text file ({err})") from err
    if data.size == 0:
        return np.zeros((0, 3), np.float32)
    if data.shape[1] < 3:
        raise CorruptFileError(f"{path}: XYZ lines need at least 3 numbers, found {data.shape[1]}")
    return data[:, :3].astype(np.float32)


def _points_from_array(a: np.ndarray, source: str) -> np.ndarray:
    if a.dtype.kind not in "fiu":
        raise BadInputError(f"{source}: points must be a numeric array, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[1] < 3:
        raise BadInputError(f"{source}: points must have shape (N, 3) or (N, >=3), got {a.shape}")
    if a.shape[0] == 3 and a.shape[1] > 3:
        raise BadInputError(
            f"{source}: points have shape {a.shape}, which looks transposed (3 rows of coordinates); "
            "save them as (N, 3), e.g. np.save(path, points.T)")
    return a[:, :3].astype(np.float32)


def _numpy_read_error(path: Path, err: Exception, what: str) -> PosekitError:
    """The error to raise when numpy fails to read ``path``: pickles are refused, not corrupt."""
    if isinstance(err, ValueError) and "allow_pickle" in str(err):
        return UnsafeFileError(
            f"{path}: holds a pickled object array; posekit does not unpickle point clouds"
        )
    return CorruptFileError(f"{path}: {what} ({err})")


def _np_load(path: Path, **kw):
    with open(path, "rb") as f:
        magic = f.read(6)
    want = b"PK" if path.suffix.lower() == ".npz" else b"\x93NUMPY"
    if not magic.startswith(want):
        from posekit.io.weights import _pickle_imports

        if magic[:1] == b"\x80" and _pickle_imports(path) is not None:
            raise UnsafeFileError(f"{path}: is a pickle; posekit does not unpickle point clouds")
        kind = "an .npz archive" if want == b"PK" else "an .npy array"
        raise CorruptFileError(f"{path}: not {kind} (wrong magic bytes {magic!r}); damaged or another format")
    if want != b"PK":
        _check_npy_size(path)
    try:
        return np.load(path, allow_pickle=False, **kw)
    except (ValueError, OSError, EOFError) as err:
        raise _numpy_read_error(path, err, "cannot be read as a numpy file") from err
    except NUMPY_PARSE_ERRORS as err:
        raise CorruptFileError(f"{path}: damaged numpy file ({type(err).__name__}: {err})") from err


def _check_npy_size(path: Path) -> None:
    """CorruptFileError when an .npy header announces more data than the file holds.

    numpy would otherwise try to allocate what a damaged header says (e.g. 1e20 rows).
    """
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f, max_header_size=10000) if version != (1, 0) else read(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError, *NUMPY_PARSE_ERRORS) as err:
        if isinstance(err, ValueError) and "allow_pickle" in str(err):
            return
        raise CorruptFileError(f"{path}: damaged numpy .npy header ({type(err).__name__}: {err})") from err
    if dtype.hasobject:
        return  # refused as a pickle by np.load(allow_pickle=False)
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = path.stat().st_size - offset
    if need > have:
        raise CorruptFileError(
            f"{path}: .npy header announces shape {shape} of {dtype} ({need} bytes), the file holds "
            f"{have} (truncated or damaged)")


def _read_npy(path: Path) -> np.ndarray:
    return _points_from_array(_np_load(path), str(path))


def _read_npz(path: Path):
    import zipfile

    try:
        with _np_load(path) as z:
            if "points" not in z.files:
                raise BadInputError(
                    f"{path}: NPZ point clouds need a 'points' array; found keys {z.files}"
                )
            arrays = {k: z[k] for k in ("points", "colors", "normals") if k in z.files}
    except PosekitError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, *NUMPY_PARSE_ERRORS) as err:
        raise CorruptFileError(f"{path}: not a valid NPZ archive ({err})") from err
    except ValueError as err:
        raise _numpy_read_error(path, err, "cannot be read") from err
    points = _points_from_array(arrays["points"], f"{path}['points']")
    colors = arrays.get("colors")
    if colors is not None and colors.dtype == np.uint8:
        colors = colors.astype(np.float32) / 255.0
    normals = arrays.get("normals")
    if normals is not None:
        normals = as_float_array(normals, f"{path}['normals']", (None, 3), finite=False)
    return points, colors, normals


def write_point_cloud(
    cloud: PointCloud | np.ndarray, path: str | Path, ascii: bool = False
) -> Path:
    """Write a :class:`PointCloud` or an (N, 3) array to PLY, PCD, XYZ, NPY or NPZ (by suffix).

    Coordinates are written as they are (metres). The file is written under a temporary name
    in the same folder and renamed, so a failure leaves no half-written file.
    """
    if not isinstance(cloud, PointCloud):
        cloud = PointCloud(cloud)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in POINT_CLOUD_SUFFIXES:
        raise UnsupportedFormatError(
            f"{path}: cannot write point cloud format {path.suffix!r}; use one of {list(POINT_CLOUD_SUFFIXES)}"
        )
    # The temporary name keeps the suffix: open3d picks the format from it.
    with atomic_path(path, suffix=suffix) as tmp:
        if suffix in (".ply", ".pcd"):
            import open3d as o3d

            if not o3d.io.write_point_cloud(str(tmp), cloud.to_open3d(), write_ascii=ascii):
                raise CorruptFileError(f"{path}: open3d could not write the point cloud")
        elif suffix == ".xyz":
            np.savetxt(tmp, cloud.points, fmt="%.9g")
        elif suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, cloud.points)
        else:
            arrays = {"points": cloud.points}
            if cloud.colors is not None:
                arrays["colors"] = cloud.colors
            if cloud.normals is not None:
                arrays["normals"] = cloud.normals
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    return path


def check_metric_units(
    points: np.ndarray | PointCloud, expected_extent_m: tuple[float, float] = (0.01, 10.0)
) -> float:
    """Check that a cloud's size looks metric; return its extent (largest bounding-box side, m).

    Raises BadInputError when the extent falls outside ``expected_extent_m`` and, if it is about
    1000x too large (or small), says which unit conversion was probably forgotten.
    """
    if isinstance(points, PointCloud):
        pts = points.points
    else:
        pts = as_float_array(points, "points", (None, 3), finite=False)
    if len(pts) == 0:
        raise BadInputError("points are empty (0 points)")
    lo, hi = expected_extent_m
    if not 0 < lo < hi:
        raise BadInputError(
            f"expected_extent_m must be (min, max) with 0 < min < max, got {expected_extent_m}"
        )
    finite = pts[np.isfinite(pts).all(axis=1)]
    if len(finite) == 0:
        raise BadInputError("points are all NaN or inf")
    extent = float((finite.max(axis=0) - finite.min(axis=0)).max())
    if lo <= extent <= hi:
        return extent
    if extent > hi and lo <= extent * 1e-3 <= hi:
        raise BadInputError(
            f"point cloud extent {extent:.4g} is larger than the expected {lo}-{hi} m: "
            "it looks like millimetres, multiply by 0.001 (e.g. read_point_cloud(path, scale=0.001))"
        )
    if extent < lo <= extent * 1e3 <= hi:
        raise BadInputError(
            f"point cloud extent {extent:.4g} is smaller than the expected {lo}-{hi} m: it looks "
            "like kilometres or a doubly converted cloud (mm -> m applied twice); multiply by 1000"
        )
    raise BadInputError(
        f"point cloud extent {extent:.4g} m is outside the expected {lo}-{hi} m; check its units "
        "(posekit works in metres) or pass expected_extent_m"
    )
