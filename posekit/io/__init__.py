"""Reading and writing what sensors and datasets produce, in posekit's units (metres).

Heavy libraries (open3d, torch, rosbags) are imported inside the functions that need them.
"""

from posekit.io.depth import (
    check_depth_units,
    check_intrinsics,
    depth_to_points,
    read_depth_image,
    write_depth_image,
)
from posekit.io.mesh import Mesh, read_mesh, write_mesh
from posekit.io.pointcloud import (
    PointCloud,
    check_metric_units,
    read_point_cloud,
    write_point_cloud,
)
from posekit.io.pointcloud2 import (
    array_to_pointcloud2,
    pointcloud2_to_array,
    pointcloud2_to_pointcloud,
    pointcloud2_to_structured,
)
from posekit.io.rosbag import (
    BagMessage,
    RGBDFrame,
    iter_messages,
    list_topics,
    read_frames,
    write_bag,
)
from posekit.io.weights import load_npz, load_pickle, load_weights, save_weights

__all__ = [
    "BagMessage", "Mesh", "PointCloud", "RGBDFrame", "array_to_pointcloud2", "check_depth_units",
    "check_intrinsics", "check_metric_units", "depth_to_points", "iter_messages", "list_topics",
    "load_npz", "load_pickle", "load_weights", "pointcloud2_to_array", "pointcloud2_to_pointcloud",
    "pointcloud2_to_structured", "read_depth_image", "read_frames", "read_mesh", "read_point_cloud",
    "save_weights", "write_bag", "write_depth_image", "write_mesh", "write_point_cloud",
]
