"""Malformed inputs of the view node (image, camera_info, detections_2d), no ROS needed.

Messages are plain objects with the fields of sensor_msgs/Image, sensor_msgs/CameraInfo and
vision_msgs/Detection2DArray (as rclpy and rosbags give them); each field gets odd values of its
own message type (uint32 sizes, float64 arrays, strings, byte arrays), since the middleware
guarantees the types but nothing else. Each variant goes through the
node's frame assembler and pipeline (``crop: detections``, a tiny untrained view network):
the outcome must be a posekit error (the node skips the message and counts it) or a sane
orientation; anything else is a finding (tests/fuzzing.py).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace as NS

import fuzzing
import numpy as np
import pytest
from fuzzing import probe

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KIND = "ros view node inputs"
H, W = 48, 64
K = [60.0, 0, 31.5, 0, 60.0, 23.5, 0, 0, 1]
UINT32 = [0, 1, 7, 2 ** 31, 2 ** 32 - 1]
STRINGS = ["", "x", "16UC1", "mono16", "bgr8", "rgba8", "yuv422", "RGB8"]


def _header(stamp_ns=1_000_000_000, frame_id="color_optical"):
    return NS(stamp=NS(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


def _image():
    pixels = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return NS(header=_header(), height=H, width=W, encoding="rgb8", is_bigendian=0, step=3 * W,
              data=pixels.tobytes())


def _info():
    return NS(header=_header(0), height=H, width=W, distortion_model="plumb_bob", d=[0.0] * 5, k=list(K))


def _detections(boxes=(("7", (30.0, 20.0, 16.0, 12.0)),)):
    dets = []
    for class_id, (cx, cy, sx, sy) in boxes:
        results = [NS(hypothesis=NS(class_id=class_id, score=0.9))] if class_id is not None else []
        dets.append(NS(bbox=NS(center=NS(position=NS(x=cx, y=cy), theta=0.0), size_x=sx, size_y=sy),
                       results=results))
    return NS(header=_header(), detections=dets)


def _variants():
    """(label, image, info, detections) with one part malformed."""
    image, info, dets = _image(), _info(), _detections()
    yield "valid", image, info, dets
    fields = {"height": UINT32, "width": UINT32, "step": UINT32, "encoding": STRINGS,
              "data": [b"", image.data[:100], image.data[:-1], image.data + b"x", image.data * 2]}
    for attr, values in fields.items():
        for v in values:
            m = copy.deepcopy(image)
            setattr(m, attr, v)
            yield f"image {attr}={v!r}"[:50], m, info, dets
    ks = [[0.0] * 9, [float("nan")] * 9, [float("inf")] * 9, [-60.0, 0, 31.5, 0, -60.0, 23.5, 0, 0, 1],
          [60.0, 0, 31.5, 0, 60.0, 23.5, 1, 1, 1], [1e300] * 9, [], list(range(12))]
    for attr, values in {"height": UINT32, "width": UINT32, "k": ks, "d": [[], [float("nan")] * 5, [1e9] * 8],
                         "distortion_model": STRINGS}.items():
        for v in values:
            m = copy.deepcopy(info)
            setattr(m, attr, v)
            yield f"info {attr}={v!r}"[:50], image, m, dets
    for label, boxes in (("no detections", ()), ("nan centre", (("7", (np.nan, 20.0, 16.0, 12.0)),)),
                         ("negative size", (("7", (30.0, 20.0, -16.0, 12.0)),)),
                         ("zero size", (("7", (30.0, 20.0, 0.0, 0.0)),)),
                         ("outside", (("7", (500.0, 500.0, 16.0, 12.0)),)),
                         ("huge", (("7", (30.0, 20.0, 1e9, 1e9)),)), ("inf", (("7", (30.0, 20.0, np.inf, 12.0)),)),
                         ("other class", (("3", (30.0, 20.0, 16.0, 12.0)),)), ("no class", ((None, (30.0, 20.0, 16.0, 12.0)),)),
                         ("tiny", (("7", (30.0, 20.0, 0.5, 0.5)),)), ("text class", (("seven", (30.0, 20.0, 16.0, 12.0)),)),
                         ("two of it", (("7", (30.0, 20.0, 16.0, 12.0)), ("7", (10.0, 10.0, 4.0, 4.0)))),
                         ("half outside", (("7", (0.0, 0.0, 20.0, 20.0)),))):
        yield f"detections {label}", image, info, _detections(boxes)
    for stamp in (0, 10 ** 18, 1_000_000_000 + 49_000_000, 1_000_000_000 + 51_000_000):
        m = copy.deepcopy(dets)
        m.header = _header(stamp)
        yield f"detections stamp {stamp}", image, info, m


def _estimator():
    return fuzzing.tiny_view_estimator("posekit_fuzz_view_node_")


def test_fuzz_view_node_inputs():
    pytest.importorskip("ros_nodes.view_processing")
    from ros_nodes.parameters import COMMON_PARAMETERS, validate_parameters
    from ros_nodes.view_processing import PARAMETERS, ViewFrameAssembler, ViewPosePipeline

    params = validate_parameters((*COMMON_PARAMETERS, *PARAMETERS), {"crop": "detections", "obj_id": 7})
    pipeline = ViewPosePipeline(params, estimator=_estimator())
    outcomes = {}

    def run(image, info, dets):
        assembler = ViewFrameAssembler(pipeline.params)
        assembler.on_camera_info(info)
        frame = assembler.on_image(image)
        frame = assembler.on_detections_2d(dets) if frame is None else frame
        if frame is None:
            return None
        return pipeline.estimate(frame)

    def check(result):
        if result is None:
            return None
        ok = result.R_mode.shape == (3, 3) and np.isfinite(result.R_mode).all() and np.isfinite(result.covariance).all()
        return None if ok else "a non-finite orientation"

    for label, image, info, dets in _variants():
        outcomes[label] = probe(KIND, label, lambda a=image, b=info, c=dets: run(a, b, c), check)
    assert outcomes["valid"] == "result" and outcomes["detections other class"] == "clean_error"
    found = fuzzing.failures(KIND)
    assert found == [], "\n".join(found[:40])
