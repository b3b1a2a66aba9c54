"""Shipped models: one registry of named weights, ``from_pretrained("name")`` for every engine.

A shipped model is a file ``posekit/pretrained/<name>.pt`` written by
:func:`posekit.io.weights.save_weights` at the end of ``posekit train <engine>``; its
metadata holds the engine, the network config, the final metrics and the command that made
it (the model card in ``docs/models.md`` repeats them). A path to any such file works
wherever a name does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from posekit.errors import BadInputError, MissingFileError

PRETRAINED_DIR = Path(__file__).resolve().parent


@dataclass
class PretrainedWeights:
    """A loaded weights file: the state dict and what ``save_weights`` stored with it."""

    name: str
    path: Path
    state_dict: dict
    metadata: dict

    @property
    def config(self) -> dict:
        return dict(self.metadata.get("config") or {})


def available(engine: str | None = None) -> list[str]:
    """Names of the shipped models (of one engine when given: names start with ``engine-``)."""
    names = sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))
    return [n for n in names if engine is None or n.startswith(f"{engine}-")]


def resolve(name_or_path: str | Path, engine: str | None = None) -> Path:
    """The weights file for a shipped model name or a path; MissingFileError lists the names."""
    from posekit.validation import as_path

    candidate = as_path(name_or_path, "model name or weights path").expanduser()
    if candidate.suffix and candidate.is_file():
        return candidate
    shipped = PRETRAINED_DIR / f"{name_or_path}.pt"
    if shipped.is_file():
        return shipped
    names = ", ".join(available(engine)) or "none"
    raise MissingFileError(
        f"no weights file {str(name_or_path)!r} and no shipped model of that name "
        f"(shipped{' ' + engine if engine else ''} models: {names}); "
        "train one with `posekit train ...` and pass the path to its model.pt"
    )


def load(name_or_path: str | Path, engine: str | None = None, map_location: str = "cpu",
         allow_pickle: bool = False) -> PretrainedWeights:
    """Load shipped or user weights (``weights_only=True``) and check they belong to ``engine``."""
    from posekit.io.weights import load_weights

    path = resolve(name_or_path, engine)
    state, metadata = load_weights(path, map_location=map_location, allow_pickle=allow_pickle,
                                   return_metadata=True)
    found = metadata.get("engine")
    if engine is not None and found not in (None, "", engine):
        raise BadInputError(f"{path} holds weights of the {found!r} engine, not {engine!r}")
    return PretrainedWeights(path.stem, path, dict(state), dict(metadata))
