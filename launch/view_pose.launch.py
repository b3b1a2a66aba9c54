"""Launch the posekit view orientation node with its parameters file.

    ros2 launch launch/view_pose.launch.py image:=/detector/crop

launch/launch_ros are imported inside generate_launch_description so that tests can read
this file without them.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "ros"

ARGUMENTS = [
    ("params_file", str(CONFIG_DIR / "view_pose_node.yaml"), "ROS parameters file of the node"),
    ("image", "/object_crop/image",
     "colour crop centred on one object (crop: image) or the full colour image (crop: detections)"),
    ("camera_info", "/camera/color/camera_info", "colour camera model (crop: detections)"),
    ("detections_2d", "/detections_2d", "2D detections (crop: detections)"),
]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=default, description=description)
          for name, default, description in ARGUMENTS],
        Node(
            executable="posekit-view-pose-node",
            name="view_pose_node",
            output="screen",
            parameters=[LaunchConfiguration("params_file")],
            remappings=[(name, LaunchConfiguration(name)) for name in ("image", "camera_info", "detections_2d")],
        ),
    ])
