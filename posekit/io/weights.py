"""Model weights and body-model arrays, loaded without running code from the file.

A PyTorch checkpoint, a ``.npz`` with object arrays, and any ``.pkl`` file are pickles, and
unpickling can call arbitrary functions. posekit therefore loads checkpoints with
``torch.load(weights_only=True)`` (tensors, containers and plain numbers only) and ``.npz``
files with ``allow_pickle=False``; anything needing pickle raises UnsafeFileError unless the
caller passes ``allow_pickle=True`` for a file they trust.

Files written by :func:`save_weights` hold ``{"format": "posekit.weights/1", "state_dict": ...,
"metadata": {...}}``; :func:`load_weights` unwraps them.
"""

from __future__ import annotations

import json
import logging
import pickle
import pickletools
import tokenize
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import BadInputError, CorruptFileError, MissingFileError, UnsafeFileError
from posekit.io.atomic import atomic_path
from posekit.validation import as_path

logger = logging.getLogger(__name__)

WEIGHTS_FORMAT = "posekit.weights/1"
# What numpy's .npy/.npz parsing raises on damaged headers and archives, besides ValueError
# and OSError (an .npy header is a Python literal, read with the tokenizer).
NUMPY_PARSE_ERRORS = (SyntaxError, tokenize.TokenError, OverflowError, MemoryError, KeyError,
                      NotImplementedError, zipfile.BadZipFile, EOFError, TypeError)
_PICKLE_SUFFIXES = (".pkl", ".pickle")
# Opcodes with which a pickle imports or calls something: the ways it can run code.
_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


def _require_file(path: str | Path, what: str) -> Path:
    path = as_path(path, "weights path")
    if not path.is_file():
        raise MissingFileError(f"{what} not found: {path}")
    return path


def _pickle_imports(path: Path) -> list[str] | None:
    """What a plain pickle file imports or calls (opcode names and GLOBAL targets); None if unparsable."""
    found: list[str] = []
    try:
        with open(path, "rb") as f:
            for opcode, arg, _ in pickletools.genops(f):
                if opcode.name == "GLOBAL":
                    found.append(str(arg).replace(" ", "."))
                elif opcode.name in _CODE_OPCODES and opcode.name not in found:
                    found.append(opcode.name)
    except Exception:  # noqa: BLE001 (pickletools raises many types on garbage)
        return None
    return found


def _starts_like_zip(path: Path) -> bool:
    """A zip's local header magic: such a file is a damaged archive, never a pickle to scan."""
    with open(path, "rb") as f:
        return f.read(2) == b"PK"


def _first_line(err: Exception) -> str:
    """torch's load errors run to paragraphs of advice (some of it to disable safety): keep line one."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _refusal(path: Path, detail: str) -> UnsafeFileError:
    return UnsafeFileError(
        f"{path}: loading it needs pickle, which can run arbitrary code ({detail}). "
        "If you trust where the file comes from, pass allow_pickle=True; better, re-save it as "
        "a plain state dict (posekit.io.weights.save_weights) or .npz without object arrays."
    )


def load_weights(
    path: str | Path,
    map_location: str = "cpu",
    allow_pickle: bool = False,
    return_metadata: bool = False,
):
    """Load a PyTorch checkpoint (state dict) with ``torch.load(weights_only=True)``.

    Returns the state dict (unwrapped for posekit files), or (state, metadata) with
    ``return_metadata`` (metadata {} for foreign files). A checkpoint that needs pickle, or
    a ``.pkl`` file, raises UnsafeFileError unless ``allow_pickle=True``; a damaged file
    raises CorruptFileError.
    """
    import torch

    path = _require_file(path, "weights file")
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        obj = load_pickle(path, allow_pickle=allow_pickle)
    else:
        check_zip_integrity(path)
        try:
            obj = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # noqa: BLE001 (torch raises many types; classified below)
            obj = _load_refused_checkpoint(path, err, map_location, allow_pickle)
    state, metadata = obj, {}
    if isinstance(obj, Mapping) and obj.get("format") == WEIGHTS_FORMAT:
        state, metadata = obj["state_dict"], dict(obj.get("metadata") or {})
    return (state, metadata) if return_metadata else state


def check_zip_integrity(path: Path) -> None:
    """CorruptFileError if ``path`` is a zip archive (a PyTorch checkpoint) with a damaged record.

    torch.load does not check the CRC-32 that the zip format stores for each record, so a
    flipped bit in a tensor loads as a wrong weight. Checking every record's CRC catches it.
    Files that are not zip archives are left to the loader.
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise CorruptFileError(f"{path}: damaged checkpoint ({err}); re-download or re-train it") from err
    if bad is not None:
        raise CorruptFileError(
            f"{path}: damaged checkpoint: record {bad!r} does not match its checksum (CRC-32); "
            "the file was altered or corrupted, re-download or re-train it"
        )


def fit_state_dict(module, state: Mapping[str, Any], source: str | Path = "weights",
                   optional: Iterable[str] = ()):
    """Load ``state`` into torch ``module`` after checking that it fits: CorruptFileError otherwise.

    Every parameter and buffer of ``module`` must be in ``state`` with the same shape (except
    the names in ``optional``, e.g. buffers rebuilt from the config), and ``state`` may hold
    nothing else; the error names the offending keys and shapes and ``source``. Returns the
    module.
    """
    import torch

    if not isinstance(state, Mapping):
        raise CorruptFileError(f"{source}: expected a state dict (name -> tensor), got {type(state).__name__}")
    expected = module.state_dict()
    optional = set(optional)
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: {tuple(state[k].shape)} in the file, {tuple(expected[k].shape)} in the network"
              for k in expected if k in state and isinstance(state[k], torch.Tensor)
              and state[k].shape != expected[k].shape]
    problems = []
    if not_tensors:
        problems.append(f"not tensors: {not_tensors[:5]}")
    if missing:
        problems.append(f"missing: {missing[:5]}" + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    if unexpected:
        problems.append(f"unexpected: {unexpected[:5]}"
                        + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""))
    if shapes:
        problems.append("wrong shape: " + "; ".join(shapes[:5]))
    if problems:
        raise CorruptFileError(
            f"{source}: the weights do not fit the network ({', '.join(problems)}); they were made "
            "for another network or config"
        )
    try:
        module.load_state_dict(dict(state), strict=not optional)
    except (RuntimeError, TypeError, ValueError) as err:  # e.g. dtypes that cannot be copied
        raise CorruptFileError(f"{source}: the weights do not fit the network ({err})") from err
    return module


def _load_refused_checkpoint(path: Path, err: Exception, map_location: str, allow_pickle: bool):
    """Tell a checkpoint that needs pickle (UnsafeFileError / opt-in load) from a damaged one."""
    import torch

    if zipfile.is_zipfile(path):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception as scan_err:  # noqa: BLE001 (any failure here means a damaged zip)
            raise CorruptFileError(f"{path}: damaged checkpoint ({_first_line(scan_err)})") from err
    else:
        unsafe = None if _starts_like_zip(path) else _pickle_imports(path)
        if unsafe is None:
            raise CorruptFileError(
                f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle), or damaged"
            ) from err
    if not unsafe:
        raise CorruptFileError(f"{path}: cannot be loaded ({_first_line(err)})") from err
    if not allow_pickle:
        raise _refusal(path, f"it references {', '.join(unsafe[:8])}") from err
    logger.warning("%s: loading with pickle (allow_pickle=True); it references %s", path, unsafe)
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as load_err:
        raise CorruptFileError(
            f"{path}: cannot be loaded even with pickle ({load_err})"
        ) from load_err


def load_pickle(path: str | Path, allow_pickle: bool = False) -> Any:
    """Load a ``.pkl`` file, only with ``allow_pickle=True`` (UnsafeFileError otherwise).

    Python 2 pickles (e.g. original SMPL files) are read with latin1 strings.
    """
    path = _require_file(path, "pickle file")
    if not allow_pickle:
        raise _refusal(path, "it is a pickle file")
    logger.warning("%s: unpickling (allow_pickle=True)", path)
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError) as err:
        raise CorruptFileError(f"{path}: damaged pickle ({err})") from err


def _check_metadata(metadata: Any) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise BadInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        # Only what JSON can hold: it also loads with weights_only=True.
        return json.loads(json.dumps(dict(metadata)))
    except (TypeError, ValueError) as err:
        raise BadInputError(
            f"metadata must hold only str/int/float/bool/None/list/dict values ({err})"
        ) from err


def save_weights(
    state: Mapping[str, Any], path: str | Path, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Save a state dict (tensors) and JSON-like metadata so that it loads with weights_only=True.

    The file is written under a temporary name, checked to load without pickle, then
    renamed; a state holding arbitrary Python objects raises BadInputError and writes nothing.
    """
    import torch

    if not isinstance(state, Mapping):
        raise BadInputError(
            f"state must be a dict (e.g. model.state_dict()), got {type(state).__name__}"
        )
    payload = {
        "format": WEIGHTS_FORMAT,
        "state_dict": dict(state),
        "metadata": _check_metadata(metadata),
    }
    path = as_path(path, "weights path")
    with atomic_path(path, suffix="") as tmp:
        try:
            torch.save(payload, tmp)
        except (pickle.PicklingError, AttributeError, TypeError) as err:
            raise BadInputError(
                f"state cannot be saved ({type(err).__name__}: {err}); save tensors, numbers, "
                "strings and lists/dicts of them (no functions, lambdas or open objects)"
            ) from err
        try:
            torch.load(tmp, map_location="cpu", weights_only=True)
        except Exception as err:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(tmp))
            raise BadInputError(
                f"state holds objects that only load with pickle ({', '.join(unsafe) or err}); "
                "save tensors, numbers, strings and lists/dicts of them"
            ) from err
    return path


def load_npz(path: str | Path, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """All arrays of a ``.npz`` (e.g. an SMPL-format body model) as a dict, loaded eagerly.

    Object arrays are pickles: they raise UnsafeFileError (naming the keys) unless
    ``allow_pickle=True``. A damaged archive raises CorruptFileError.
    """
    path = _require_file(path, "npz file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic.startswith(b"PK"):
            raise CorruptFileError(f"{path}: truncated or damaged .npz archive (no zip directory)")
        if magic == b"\x93NUMPY":
            raise CorruptFileError(f"{path}: is a single .npy array, not an .npz archive")
        if _pickle_imports(path) is not None:
            raise _refusal(path, "it is a pickle, not an .npz archive")
        raise CorruptFileError(f"{path}: not an .npz archive (damaged or another format)")
    out: dict[str, np.ndarray] = {}
    refused: list[str] = []
    try:
        with np.load(path, allow_pickle=allow_pickle) as z:
            for key in z.files:
                try:
                    out[key] = z[key]
                except ValueError as err:
                    if "allow_pickle" not in str(err):
                        raise
                    refused.append(key)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, *NUMPY_PARSE_ERRORS) as err:
        raise CorruptFileError(f"{path}: damaged or not an .npz archive ({err})") from err
    if refused:
        raise _refusal(path, f"arrays {refused} are pickled Python objects")
    return out


__all__ = ["WEIGHTS_FORMAT", "check_zip_integrity", "fit_state_dict", "load_npz", "load_pickle",
           "load_weights", "save_weights"]
