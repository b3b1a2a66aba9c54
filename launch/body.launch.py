"""Launch the posekit body node with its parameters file.

    ros2 launch launch/body.launch.py points:=/person/points

launch/launch_ros are imported inside generate_launch_description so that tests can read
this file without them.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "ros"

ARGUMENTS = [
    ("params_file", str(CONFIG_DIR / "body_node.yaml"), "ROS parameters file of the node"),
    ("points", "/person/points", "point cloud of one person"),
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
            executable="posekit-body-node",
            name="body_node",
            output="screen",
            parameters=[LaunchConfiguration("params_file")],
            remappings=[("points", LaunchConfiguration("points"))],
        ),
    ])
