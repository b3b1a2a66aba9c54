"""Launch the posekit object pose node with its parameters file and camera remappings.

    ros2 launch launch/object_pose.launch.py points:=/camera/depth/color/points

The node is a console script of the posekit package (no ament package: launch_ros runs it
from PATH), so activate posekit's environment first. launch/launch_ros are imported inside
generate_launch_description so that tests can read this file without them.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "ros"

# Launch arguments (name, default, description); the inputs are remapped to them.
ARGUMENTS = [
    ("params_file", str(CONFIG_DIR / "object_pose_node.yaml"), "ROS parameters file of the node"),
    ("points", "/camera/depth/points", "segmented object cloud (input_mode: pointcloud)"),
    ("depth", "/camera/depth/image_rect_raw", "depth image (input_mode: depth)"),
    ("camera_info", "/camera/depth/camera_info", "camera model of the depth image"),
    ("mask", "/segmentation/mask", "object mask (segmentation: mask)"),
    ("detections_2d", "/detections_2d", "2D detections (segmentation: detections)"),
    ("image", "/camera/color/image_raw", "colour image registered to depth (view_weights set)"),
]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    inputs = [name for name, _, _ in ARGUMENTS if name != "params_file"]
    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=default, description=description)
          for name, default, description in ARGUMENTS],
        Node(
            executable="posekit-object-pose-node",
            name="object_pose_node",
            output="screen",
            parameters=[LaunchConfiguration("params_file")],
            remappings=[(name, LaunchConfiguration(name)) for name in inputs],
        ),
    ])
