"""Launch every posekit node on one camera: object poses, body fitting and view orientation,
each with its parameters file.

    ros2 launch launch/pipeline.launch.py camera:=/camera

Topics follow the usual camera driver layout under ``camera`` (RealSense/Orbbec style:
depth/points, depth/image_rect_raw, depth/camera_info, color/image_raw, color/camera_info);
remap more finely with the single-node launch files.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "ros"

ARGUMENTS = [
    ("object_params_file", str(CONFIG_DIR / "object_pose_node.yaml"), "object pose node parameters"),
    ("points", "/camera/depth/points", "segmented object cloud"),
    ("depth", "/camera/depth/image_rect_raw", "depth image"),
    ("camera_info", "/camera/depth/camera_info", "camera model of the depth image"),
    ("mask", "/segmentation/mask", "object mask"),
    ("detections_2d", "/detections_2d", "2D detections"),
    ("object_image", "/camera/color/image_raw", "colour image registered to depth, for the object node's view "
                     "prior (view_weights)"),
    ("body_params_file", str(CONFIG_DIR / "body_node.yaml"), "body node parameters"),
    ("person_points", "/person/points", "point cloud of one person, for the body node"),
    ("view_params_file", str(CONFIG_DIR / "view_pose_node.yaml"), "view orientation node parameters"),
    ("image", "/object_crop/image", "colour crop centred on one object (or the full image), for the view node"),
    ("color_camera_info", "/camera/color/camera_info", "colour camera model, for the view node (crop: detections)"),
]
OBJECT_INPUTS = ["points", "depth", "camera_info", "mask", "detections_2d"]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=default, description=description)
          for name, default, description in ARGUMENTS],
        Node(
            executable="posekit-object-pose-node",
            name="object_pose_node",
            output="screen",
            parameters=[LaunchConfiguration("object_params_file")],
            remappings=[(name, LaunchConfiguration(name)) for name in OBJECT_INPUTS]
            + [("image", LaunchConfiguration("object_image"))],
        ),
        Node(
            executable="posekit-body-node",
            name="body_node",
            output="screen",
            parameters=[LaunchConfiguration("body_params_file")],
            remappings=[("points", LaunchConfiguration("person_points"))],
        ),
        Node(
            executable="posekit-view-pose-node",
            name="view_pose_node",
            output="screen",
            parameters=[LaunchConfiguration("view_params_file")],
            remappings=[("image", LaunchConfiguration("image")),
                        ("camera_info", LaunchConfiguration("color_camera_info")),
                        ("detections_2d", LaunchConfiguration("detections_2d"))],
        ),
    ])
