"""posekit's exceptions: one small hierarchy, messages that say what is wrong and what to do.

Every error raised on purpose by posekit derives from :class:`PosekitError`, so a caller
(or a ROS node) can catch bad input without catching programming errors.
"""

from __future__ import annotations


class PosekitError(Exception):
    """Base class of every error posekit raises on purpose."""


class BadInputError(PosekitError, ValueError):
    """Input data is unusable: empty, NaN, wrong shape, dtype or units."""


class MissingFileError(PosekitError, FileNotFoundError):
    """A file or dataset part that is needed does not exist."""


class CorruptFileError(PosekitError, ValueError):
    """A file exists but cannot be parsed (truncated, malformed, wrong content)."""


class UnsupportedFormatError(PosekitError, ValueError):
    """A file format, message encoding or field type posekit does not handle."""


class OutputPathError(BadInputError):
    """An output path cannot be written: it is a folder, its parent is a file, or no permission."""


class IncompleteDatasetError(CorruptFileError):
    """A dataset folder whose writer did not finish (killed or failed): regenerate it."""


class ComputationError(PosekitError, RuntimeError):
    """A computation did not reach a valid result (an internal consistency check failed)."""


class UnitsWarning(UserWarning):
    """Data whose size suggests other units than posekit's metres (e.g. millimetres)."""


class UnsafeFileError(PosekitError):
    """Loading this file would run arbitrary code (pickle); refused without an explicit opt-in."""


class PosekitWarning(UserWarning):
    """Something posekit read or computed is usable but suspicious (drifted rotations in a
    dataset, skipped entries): the message says what and where."""
