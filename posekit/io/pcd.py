"""PCD files (PCL's point cloud format), parsed by posekit itself: header checked, data exact.

open3d's PCD reader returns zeros for ``double`` x/y/z in binary files, zeros for garbage
ASCII, and guesses at unknown DATA kinds without a word. This module reads the header,
checks every field against it and decodes the three DATA kinds PCL writes:

- ``ascii``: one point per line, ``sum(COUNT)`` numbers each;
- ``binary``: packed little-endian records of ``sum(SIZE * COUNT)`` bytes;
- ``binary_compressed``: ``uint32 compressed_size, uint32 uncompressed_size`` then LZF
  data (Lehmann's liblzf format) holding the fields one after the other (all x, all y, ...).

Field types F (float, 4 or 8 bytes), I and U (1, 2, 4 or 8 bytes) are read; the packed
colour fields ``rgb``/``rgba`` (PCL: 0x00RRGGBB in a float's or uint's bits) become colours.
A file that disagrees with its header raises CorruptFileError, a DATA kind or type posekit
does not know UnsupportedFormatError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posekit.errors import CorruptFileError, UnsupportedFormatError

DATA_KINDS = ("ascii", "binary", "binary_compressed")
_TYPE_SIZES = {"F": (4, 8), "I": (1, 2, 4, 8), "U": (1, 2, 4, 8)}
# The header of a PCD is a few hundred bytes; a file without DATA in its first 64 KiB is not one.
_MAX_HEADER_BYTES = 65536


@dataclass
class PcdHeader:
    """What a PCD header declares. ``offset``: byte where the data starts."""

    fields: list[str]
    sizes: list[int]
    types: list[str]
    counts: list[int]
    width: int
    height: int
    points: int
    data: str
    offset: int

    @property
    def dtype(self) -> np.dtype:
        """The little-endian record type of one point (field names made unique)."""
        seen: dict[str, int] = {}
        parts = []
        for name, size, typ, count in zip(self.fields, self.sizes, self.types, self.counts):
            seen[name] = seen.get(name, 0) + 1
            unique = name if seen[name] == 1 else f"{name}__{seen[name]}"
            code = {"F": "f", "I": "i", "U": "u"}[typ] + str(size)
            parts.append((unique, "<" + code, (count,)) if count > 1 else (unique, "<" + code))
        return np.dtype(parts)


def _ints(values: list[bytes], key: str, path: Path) -> list[int]:
    try:
        out = [int(v) for v in values]
    except ValueError as err:
        raise CorruptFileError(f"{path}: PCD header {key} must hold integers ({err})") from err
    if any(v < 0 for v in out):
        raise CorruptFileError(f"{path}: PCD header {key} holds a negative number")
    return out


def read_pcd_header(path: str | Path) -> PcdHeader:
    """Parse and check the header of a PCD file (CorruptFileError / UnsupportedFormatError)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(_MAX_HEADER_BYTES)
    entries: dict[str, list[bytes]] = {}
    pos, offset = 0, None
    while pos < len(head):
        end = head.find(b"\n", pos)
        if end < 0:
            break
        line = head[pos:end].strip()
        pos = end + 1
        if not line or line.startswith(b"#"):
            continue
        key, *values = line.split()
        try:
            key_text = key.decode("ascii").upper()
        except UnicodeDecodeError:
            raise CorruptFileError(f"{path}: not a PCD file (binary data in the header)") from None
        entries[key_text] = values
        if key_text == "DATA":
            offset = pos
            break
    if offset is None:
        raise CorruptFileError(f"{path}: PCD header has no DATA line (not a PCD file, or corrupt)")
    data = b" ".join(entries["DATA"]).decode("ascii", "replace")
    if data not in DATA_KINDS:
        raise UnsupportedFormatError(f"{path}: PCD DATA kind {data!r} is unknown; PCD files hold one of {list(DATA_KINDS)}")
    if "FIELDS" not in entries or "SIZE" not in entries or "TYPE" not in entries:
        raise CorruptFileError(f"{path}: PCD header needs FIELDS, SIZE and TYPE lines")
    fields = [v.decode("ascii", "replace") for v in entries["FIELDS"]]
    sizes = _ints(entries["SIZE"], "SIZE", path)
    types = [v.decode("ascii", "replace").upper() for v in entries["TYPE"]]
    counts = _ints(entries["COUNT"], "COUNT", path) if "COUNT" in entries else [1] * len(fields)
    if not (len(fields) == len(sizes) == len(types) == len(counts)) or not fields:
        raise CorruptFileError(
            f"{path}: PCD header has {len(fields)} FIELDS but {len(sizes)} SIZE, {len(types)} TYPE "
            f"and {len(counts)} COUNT values")
    for name, size, typ, count in zip(fields, sizes, types, counts):
        if typ not in _TYPE_SIZES or size not in _TYPE_SIZES[typ]:
            raise UnsupportedFormatError(
                f"{path}: PCD field {name!r} has TYPE {typ} SIZE {size}; posekit reads F (4, 8 bytes) "
                "and I/U (1, 2, 4, 8 bytes)")
        if count < 1:
            raise CorruptFileError(f"{path}: PCD field {name!r} has COUNT {count}")
    for axis in ("x", "y", "z"):
        if axis not in fields:
            raise UnsupportedFormatError(f"{path}: PCD has no {axis!r} field (fields: {fields}); not a 3D point cloud")
        if counts[fields.index(axis)] != 1:
            raise CorruptFileError(f"{path}: PCD field {axis!r} must have COUNT 1")
    width = _ints(entries.get("WIDTH", [b"0"]), "WIDTH", path)[0]
    height = _ints(entries.get("HEIGHT", [b"1"]), "HEIGHT", path)[0]
    points = _ints(entries["POINTS"], "POINTS", path)[0] if "POINTS" in entries else width * height
    if "WIDTH" in entries and width * height != points:
        raise CorruptFileError(f"{path}: PCD header says POINTS {points} but WIDTH x HEIGHT = {width} x {height}")
    return PcdHeader(fields, sizes, types, counts, width, height, points, data, offset)


def lzf_decompress(data: bytes, expected_size: int) -> bytes:
    """Decompress LZF data (liblzf's format, as PCL writes it) to exactly ``expected_size`` bytes.

    Raises CorruptFileError (a ValueError) on data that is truncated, points outside the
    output, or has another size.
    """
    out = bytearray(expected_size)
    ip = op = 0
    n = len(data)
    while ip < n:
        ctrl = data[ip]
        ip += 1
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            length = ctrl + 1
            if ip + length > n or op + length > expected_size:
                raise CorruptFileError("literal run beyond the end of the data")
            out[op:op + length] = data[ip:ip + length]
            ip += length
        else:  # a back reference: length (3 bit, extended by a byte), 13 bit distance
            length = ctrl >> 5
            if length == 7:
                if ip >= n:
                    raise CorruptFileError("truncated back reference")
                length += data[ip]
                ip += 1
            if ip >= n:
                raise CorruptFileError("truncated back reference")
            ref = op - ((ctrl & 0x1F) << 8) - data[ip] - 1
            ip += 1
            length += 2
            if ref < 0 or op + length > expected_size:
                raise CorruptFileError("back reference outside the output")
            if ref + length <= op:
                out[op:op + length] = out[ref:ref + length]
            else:  # overlapping copy: repeats the last (op - ref) bytes
                for i in range(length):
                    out[op + i] = out[ref + i]
        op += length
    if op != expected_size:
        raise CorruptFileError(f"decompressed to {op} bytes, the header announces {expected_size}")
    return bytes(out)


def _records_binary(payload: bytes, header: PcdHeader, path: Path) -> np.ndarray:
    dtype = header.dtype
    need = header.points * dtype.itemsize
    if len(payload) < need:
        raise CorruptFileError(
            f"{path}: header announces {header.points} points ({need} bytes) but the data holds "
            f"only {len(payload) // max(dtype.itemsize, 1)} (truncated or corrupt file)")
    return np.frombuffer(payload, dtype=dtype, count=header.points)


def _records_compressed(payload: bytes, header: PcdHeader, path: Path) -> np.ndarray:
    dtype = header.dtype
    if len(payload) < 8:
        raise CorruptFileError(f"{path}: binary_compressed PCD without its size fields (truncated)")
    compressed, uncompressed = (int(v) for v in np.frombuffer(payload[:8], "<u4"))
    need = header.points * dtype.itemsize
    if uncompressed != need:
        raise CorruptFileError(
            f"{path}: compressed data holds {uncompressed} bytes, but {header.points} points of "
            f"{dtype.itemsize} bytes need {need} (corrupt header)")
    if 8 + compressed > len(payload):
        raise CorruptFileError(
            f"{path}: compressed data of {compressed} bytes announced, {len(payload) - 8} present "
            "(truncated file)")
    try:
        raw = lzf_decompress(payload[8:8 + compressed], uncompressed) if need else b""
    except CorruptFileError as err:
        raise CorruptFileError(f"{path}: compressed point data is corrupt ({err})") from err
    # Stored field by field (all x, then all y, ...): regroup into records.
    records = np.zeros(header.points, dtype=dtype)
    start = 0
    for name in dtype.names:
        field = dtype.fields[name][0]
        n_values = header.points * (field.itemsize // field.base.itemsize)
        values = np.frombuffer(raw, dtype=field.base, count=n_values, offset=start)
        records[name] = values.reshape(records[name].shape)
        start += field.itemsize * header.points
    return records


def _records_ascii(payload: bytes, header: PcdHeader, path: Path) -> np.ndarray:
    dtype = header.dtype
    lines = [line for line in payload.split(b"\n") if line.strip()]
    if len(lines) < header.points:
        raise CorruptFileError(
            f"{path}: header announces {header.points} points but the data holds only {len(lines)} "
            "lines (truncated or corrupt file)")
    per_point = sum(header.counts)
    tokens = b" ".join(lines[:header.points]).split()
    if len(tokens) != per_point * header.points:
        raise CorruptFileError(
            f"{path}: ascii PCD lines must hold {per_point} numbers each (FIELDS/COUNT), found "
            f"{len(tokens)} numbers in {header.points} lines")
    try:
        values = np.array(tokens, dtype=np.float64).reshape(header.points, per_point)
    except ValueError as err:
        raise CorruptFileError(f"{path}: ascii PCD data holds something that is not a number ({err})") from err
    records = np.zeros(header.points, dtype=dtype)
    col = 0
    for name, typ, count in zip(dtype.names, header.types, header.counts):
        block = values[:, col:col + count]
        col += count
        target = records[name]
        if typ == "F":
            target[...] = block.reshape(target.shape)
        else:
            if not np.isfinite(block).all() or (block != np.round(block)).any():
                raise CorruptFileError(f"{path}: integer PCD field {name!r} holds non-integer values")
            info = np.iinfo(dtype.fields[name][0].base)
            if block.min(initial=0) < info.min or block.max(initial=0) > info.max:
                raise CorruptFileError(f"{path}: PCD field {name!r} holds values outside its type")
            target[...] = block.reshape(target.shape).astype(target.dtype)
    return records


def _colors(records: np.ndarray, header: PcdHeader) -> np.ndarray | None:
    for name in ("rgb", "rgba"):
        if name in header.fields and header.sizes[header.fields.index(name)] == 4 \
                and header.counts[header.fields.index(name)] == 1:
            packed = np.ascontiguousarray(records[name]).view(np.uint32)
            rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1)
            return rgb.astype(np.float32) / 255.0
    return None


def read_pcd(path: str | Path):
    """(points (N, 3) float64, colors (N, 3) float32 or None, normals (N, 3) float64 or None)."""
    path = Path(path)
    header = read_pcd_header(path)
    payload = path.read_bytes()[header.offset:]
    if header.data == "ascii":
        records = _records_ascii(payload, header, path)
    elif header.data == "binary":
        records = _records_binary(payload, header, path)
    else:
        records = _records_compressed(payload, header, path)
    with np.errstate(over="ignore", invalid="ignore"):
        points = np.stack([records[a].astype(np.float64) for a in ("x", "y", "z")], axis=1)
        normals = None
        if all(f"normal_{a}" in header.fields for a in "xyz"):
            normals = np.stack([records[f"normal_{a}"].astype(np.float64) for a in "xyz"], axis=1)
    return points, _colors(records, header), normals


__all__ = ["DATA_KINDS", "PcdHeader", "lzf_decompress", "read_pcd", "read_pcd_header"]
