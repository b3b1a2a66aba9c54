"""A stand-in for sensor_msgs/PointCloud2 with no ROS import: posekit.io.pointcloud2 works on
any object with the message's attributes, and tests build such messages byte by byte."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Field:
    name: str
    offset: int
    datatype: int
    count: int = 1


@dataclass
class Header:
    frame_id: str = "cam"


@dataclass
class Cloud:
    height: int
    width: int
    fields: list
    is_bigendian: bool
    point_step: int
    row_step: int
    data: Any
    is_dense: bool = False
    header: Header = field(default_factory=Header)
