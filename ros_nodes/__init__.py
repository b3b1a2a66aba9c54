"""Thin rclpy wrappers around the posekit Python API (one node per engine).

Nodes convert messages to arrays with :mod:`posekit.io.pointcloud2` and friends, declare
their parameters, and call the engines; all logic lives in :mod:`posekit`, which never
imports ROS.
"""
