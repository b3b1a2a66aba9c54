"""PLY headers and binary layout, checked before a PLY file reaches open3d.

open3d (through RPly) trusts a binary PLY's structure: a file whose header says binary while
its body is text, or whose face lists hold garbage counts and indices, can crash the process
(a segmentation fault, found by posekit's fuzz suite). :func:`check_ply` parses the header,
walks the binary body with numpy (every element, every list count), checks that the data
fills the file exactly as the header says and that face indices name existing vertices, and
raises CorruptFileError otherwise. ASCII files are left to open3d, whose parser reports
errors instead of crashing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posekit.errors import CorruptFileError, UnsupportedFormatError

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
_MAX_HEADER_BYTES = 65536
# A list longer than this in a mesh file is garbage (a face of 65536 vertices is not a triangle).
_MAX_LIST_LENGTH = 65535


@dataclass
class PlyProperty:
    name: str
    dtype: str  # numpy code without byte order
    count_dtype: str | None = None  # set for list properties


@dataclass
class PlyElement:
    name: str
    count: int
    properties: list[PlyProperty] = field(default_factory=list)


@dataclass
class PlyHeader:
    format: str
    elements: list[PlyElement]
    offset: int  # byte where the body starts

    def count(self, name: str) -> int:
        return next((e.count for e in self.elements if e.name == name), 0)


def read_ply_header(path: str | Path) -> PlyHeader:
    """Parse a PLY header; CorruptFileError / UnsupportedFormatError naming what is wrong."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(_MAX_HEADER_BYTES)
    if not head.startswith(b"ply"):
        raise CorruptFileError(f"{path}: not a PLY file (it does not start with 'ply')")
    m = re.search(rb"end_header\r?\n", head)
    if m is None:
        raise CorruptFileError(f"{path}: PLY header has no 'end_header' line (truncated or corrupt)")
    fmt, elements = None, []
    for raw in head[:m.start()].split(b"\n")[1:]:
        words = raw.decode("ascii", "replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) < 2 or words[1] not in _FORMATS:
                raise UnsupportedFormatError(f"{path}: PLY format {' '.join(words[1:])!r} is unknown")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise CorruptFileError(f"{path}: malformed PLY line {raw.decode('ascii', 'replace')!r}")
            elements.append(PlyElement(words[1], int(words[2])))
        elif words[0] == "property":
            if not elements:
                raise CorruptFileError(f"{path}: PLY property before any element")
            if len(words) == 5 and words[1] == "list" and words[2] in _TYPES and words[3] in _TYPES:
                if _TYPES[words[2]][0] == "f":
                    raise CorruptFileError(f"{path}: PLY list {words[4]!r} has a float count type")
                elements[-1].properties.append(PlyProperty(words[4], _TYPES[words[3]], _TYPES[words[2]]))
            elif len(words) == 3 and words[1] in _TYPES:
                elements[-1].properties.append(PlyProperty(words[2], _TYPES[words[1]]))
            else:
                raise CorruptFileError(f"{path}: malformed or unknown PLY property {raw.decode('ascii', 'replace')!r}")
        else:
            raise CorruptFileError(f"{path}: unknown PLY header line {raw.decode('ascii', 'replace')!r}")
    if fmt is None:
        raise CorruptFileError(f"{path}: PLY header has no format line")
    return PlyHeader(fmt, elements, m.end())


def _walk_element(body: memoryview, pos: int, element: PlyElement, order: str, path: Path):
    """(position after ``element``, {list name: (counts, indices)}) of a binary element."""
    props = element.properties
    if all(p.count_dtype is None for p in props):
        size = sum(np.dtype(p.dtype).itemsize for p in props) * element.count
        if pos + size > len(body):
            raise CorruptFileError(f"{path}: PLY element {element.name!r} needs {size} bytes, "
                                   f"{len(body) - pos} are left (truncated or not binary)")
        return pos + size, {}
    # Fast path: every list of the element has the length of the first record's.
    first, offset = {}, pos
    for p in props:
        dt = np.dtype(order + (p.count_dtype or p.dtype))
        if offset + dt.itemsize > len(body):
            raise CorruptFileError(f"{path}: PLY element {element.name!r} is truncated")
        if p.count_dtype is not None:
            n = int(np.frombuffer(body, dt, 1, offset)[0])
            if n < 0 or n > _MAX_LIST_LENGTH:
                raise CorruptFileError(f"{path}: PLY list {p.name!r} has length {n} (corrupt or not binary)")
            first[p.name] = n
            offset += dt.itemsize + n * np.dtype(p.dtype).itemsize
        else:
            offset += dt.itemsize
    fields = []
    for p in props:
        if p.count_dtype is not None:
            fields.append((p.name + "__n", order + p.count_dtype))
            if first[p.name]:
                fields.append((p.name, order + p.dtype, (first[p.name],)))
        else:
            fields.append((p.name, order + p.dtype))
    record = np.dtype(fields)
    size = record.itemsize * element.count
    if pos + size > len(body):  # truncated, or lists of several lengths (triangles and quads)
        return _walk_mixed(body, pos, element, order, path)
    records = np.frombuffer(body, record, element.count, pos)
    if any((records[p.name + "__n"] != first[p.name]).any() for p in props if p.count_dtype is not None):
        return _walk_mixed(body, pos, element, order, path)  # e.g. triangles and quads
    lists = {p.name: records[p.name] if first[p.name] else np.zeros((element.count, 0))
             for p in props if p.count_dtype is not None}
    return pos + size, lists


def _walk_mixed(body: memoryview, pos: int, element: PlyElement, order: str, path: Path):
    """The slow walk of an element whose lists differ in length from record to record."""
    lists: dict[str, list] = {p.name: [] for p in element.properties if p.count_dtype is not None}
    for _ in range(element.count):
        for p in element.properties:
            dt = np.dtype(order + (p.count_dtype or p.dtype))
            if pos + dt.itemsize > len(body):
                raise CorruptFileError(f"{path}: PLY element {element.name!r} is truncated")
            if p.count_dtype is None:
                pos += dt.itemsize
                continue
            n = int(np.frombuffer(body, dt, 1, pos)[0])
            pos += dt.itemsize
            item = np.dtype(order + p.dtype)
            if n < 0 or n > _MAX_LIST_LENGTH or pos + n * item.itemsize > len(body):
                raise CorruptFileError(f"{path}: PLY list {p.name!r} has length {n} (corrupt or truncated)")
            lists[p.name].append(np.frombuffer(body, item, n, pos))
            pos += n * item.itemsize
    return pos, {k: np.concatenate(v) if v else np.zeros(0) for k, v in lists.items()}


def check_ply(path: str | Path) -> PlyHeader:
    """Check that a PLY file's body matches its header (see the module docstring); return the header."""
    path = Path(path)
    header = read_ply_header(path)
    if header.format == "ascii":
        return header
    order = _FORMATS[header.format]
    body = memoryview(path.read_bytes())[header.offset:]
    pos, n_vertices = 0, header.count("vertex")
    for element in header.elements:
        pos, lists = _walk_element(body, pos, element, order, path)
        for name in ("vertex_indices", "vertex_index"):
            if element.name == "face" and name in lists and lists[name].size:
                idx = lists[name]
                if idx.min() < 0 or idx.max() >= n_vertices:
                    raise CorruptFileError(
                        f"{path}: PLY faces index vertex {int(idx.max())} (or below 0) of {n_vertices} "
                        "vertices (corrupt file)")
    return header


__all__ = ["PlyElement", "PlyHeader", "PlyProperty", "check_ply", "read_ply_header"]
