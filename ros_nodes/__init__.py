"""Thin rclpy wrappers around the posekit Python API (one node per engine).

Nodes convert messages to arrays with :mod:`posekit.io.pointcloud2` and friends, declare
their parameters, and call the engines; all logic lives in :mod:`posekit`, which never
imports ROS. Per-frame processing (``*_processing.py``) imports no rclpy either, so that
``posekit replay`` runs the nodes' own code on a bag without a ROS install.

``NODES`` lists each node: its console script, module (``python -m MODULE`` works the same)
and parameters file.
"""

NODES = {
    "object_pose_node": {
        "executable": "posekit-object-pose-node",
        "module": "ros_nodes.object_pose_node",
        "config": "configs/ros/object_pose_node.yaml",
        "processing": "ros_nodes.object_processing",
    },
    "body_node": {
        "executable": "posekit-body-node",
        "module": "ros_nodes.body_node",
        "config": "configs/ros/body_node.yaml",
        "processing": "ros_nodes.body_processing",
    },
    "view_pose_node": {
        "executable": "posekit-view-pose-node",
        "module": "ros_nodes.view_pose_node",
        "config": "configs/ros/view_pose_node.yaml",
        "processing": "ros_nodes.view_processing",
    },
}
