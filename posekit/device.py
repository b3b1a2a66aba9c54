"""The torch device a caller asks for, checked once: one home for "is there a GPU?".

Every engine takes ``device="cpu" | "cuda" | "cuda:N" | torch.device``;
:func:`resolve_device` turns it into a ``torch.device`` or raises BadInputError saying what
is missing, before any model is built or weights are moved.
"""

from __future__ import annotations

from typing import Any

from posekit.errors import BadInputError


def resolve_device(device: Any = "cpu"):
    """``device`` as a ``torch.device``; BadInputError if it is malformed or not available here.

    "cuda" needs a CUDA GPU that torch can see, "cuda:N" one with index N, "mps" Apple's
    backend; None means "cpu".
    """
    import torch

    if device is None:
        device = "cpu"
    if not isinstance(device, (str, torch.device)):
        raise BadInputError(f"device must be 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as err:
        raise BadInputError(f"device {device!r} is not a torch device name ('cpu', 'cuda', 'cuda:0', ...)") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError(f"device={str(device)!r} requested but torch sees no CUDA GPU; use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BadInputError(
                f"device={str(device)!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise BadInputError(f"device={str(device)!r} requested but MPS is not available; use device='cpu'")
    elif dev.type != "cpu":
        raise BadInputError(f"device {str(device)!r} is not supported; use 'cpu' or 'cuda'")
    return dev


__all__ = ["resolve_device"]
