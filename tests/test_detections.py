"""Detector masks: BOP default detections (COCO RLE), the simulated detector, predict bop with them."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from posekit.data.detections import DetectorModel, simulate_detections
from posekit.errors import BadInputError, CorruptFileError, PosekitWarning
from posekit.io.detections import (
    Detection,
    decode_rle,
    encode_rle,
    read_detections,
    write_detections,
)


def test_rle_round_trip_and_uncompressed_counts():
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    rle = encode_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [4, 5]
    np.testing.assert_array_equal(decode_rle(rle), mask)
    # uncompressed: column-major runs starting with background: 2 empty columns (8 px) + 1 px,
    # then 2 object px, 2 background, 2 object, then the rest (5 px)
    expected = np.zeros((4, 5), bool)
    expected[1:3, 2:4] = True
    np.testing.assert_array_equal(decode_rle({"counts": [9, 2, 2, 2, 5], "size": [4, 5]}), expected)


@pytest.mark.parametrize("seg, fragment", [({"counts": [1, 2], "size": [4, 5]}, "summing"),
                                           ({"counts": 5, "size": [4, 5]}, "string or a list"),
                                           ({"size": [4, 5]}, "counts and size"),
                                           ({"counts": "", "size": [0, 5]}, "positive")])
def test_bad_rle_is_a_clear_error(seg, fragment):
    with pytest.raises(BadInputError, match=fragment):
        decode_rle(seg)


def test_read_detections_skips_a_bad_entry_and_keeps_the_rest(tmp_path):
    mask = np.zeros((6, 8), bool)
    mask[2:5, 3:6] = True
    good = Detection(1, 2, 5, 0.8, (3.0, 2.0, 3.0, 3.0), encode_rle(mask), 0.04)
    path = tmp_path / "det.json"
    entries = [good.to_dict(), {"scene_id": 1, "image_id": 2, "category_id": 5, "bbox": [1, 2, -3, 4]},
               {"scene_id": 1, "image_id": 3, "category_id": 7, "score": 0.5, "bbox": [0, 0, 2, 2],
                "segmentation": {"counts": [0, 4, 44], "size": [6, 8]}, "time": 0.1}]
    path.write_text(json.dumps(entries))
    with pytest.warns(PosekitWarning, match="entry 1"):
        dets = read_detections(path)
    assert [d.category_id for d in dets] == [5, 7]
    np.testing.assert_array_equal(dets[0].mask(), mask)
    assert dets[1].mask().sum() == 4 and dets[0].bbox_xyxy == (3.0, 2.0, 6.0, 5.0)
    write_detections(tmp_path / "again.json", dets)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = read_detections(tmp_path / "again.json")
    np.testing.assert_array_equal(again[0].mask(), mask)
    (tmp_path / "dict.json").write_text('{"a": 1}')
    with pytest.raises(CorruptFileError, match="JSON list"):
        read_detections(tmp_path / "dict.json")


@pytest.fixture(scope="module")
def tiny_bop(tmp_path_factory):
    from posekit.data.scenes import synthesize_bop_dataset
    from posekit.io.bop import BopDataset

    root = tmp_path_factory.mktemp("bop_det")
    synthesize_bop_dataset("procedural", root, n_scenes=1, n_images=3, seed=7, width=160, height=120,
                           n_procedural_objects=3, objects_per_scene=(3, 3), progress=False)
    return root, BopDataset(root)


def test_simulated_detector_is_imperfect_reproducible_and_ranks_true_first(tiny_bop):
    _, ds = tiny_bop
    a = simulate_detections(ds, seed=3, model=DetectorModel(false_positive_prob=1.0))
    b = simulate_detections(ds, seed=3, model=DetectorModel(false_positive_prob=1.0))
    assert [d.to_dict() for d in a] == [d.to_dict() for d in b]
    changed, ious = 0, []
    for d in a:
        if d.score < 0.5:
            continue  # false positives score low
        gts = ds.scene_gt(d.scene_id)[d.image_id]
        gt_ids = [i for i, g in enumerate(gts) if g.obj_id == d.category_id]
        m = d.mask()
        best = max(gt_ids, key=lambda i: (m & ds.load_mask(d.scene_id, d.image_id, i)).sum())
        v = ds.load_mask(d.scene_id, d.image_id, best)
        ious.append((m & v).sum() / (m | v).sum())
        changed += int(not np.array_equal(m, v))
    assert changed == len(ious) and min(ious) > 0.2, "every mask is perturbed, none beyond recognition"
    fps = [d for d in a if d.score < 0.5]
    assert len(fps) == len({(d.scene_id, d.image_id) for d in a}), "one false positive per image"


class _IouOracle:
    """Answers the GT pose of the instance its mask overlaps most; remembers the masks it got."""

    def __init__(self, dataset):
        self.ds = dataset
        self.calls = []

    def prepare_model(self, mesh, obj_id=None, symmetries=None):
        return obj_id

    def estimate(self, model, points=None, *, depth=None, K=None, mask=None, bbox=None):
        self.calls.append((model, mask))
        best, best_T = 0, None
        for s in self.ds.scene_ids:
            for im in self.ds.image_ids(s):
                for i, g in enumerate(self.ds.scene_gt(s)[im]):
                    overlap = (mask & self.ds.load_mask(s, im, i)).sum() if mask.shape == depth.shape else 0
                    if g.obj_id == model and overlap > best:
                        best, best_T = overlap, g.T_cam_model
        return SimpleNamespace(success=True, reason="", R=best_T[:3, :3], t=best_T[:3, 3], score=0.7, time_ms=10.0,
                               T_cam_model=best_T)


def test_predict_bop_uses_the_best_detections_of_each_category_and_adds_their_time(tiny_bop):
    from posekit.registration.bop_predict import predict_bop

    root, ds = tiny_bop
    dets = simulate_detections(ds, seed=1, model=DetectorModel(false_positive_prob=1.0))
    oracle = _IouOracle(ds)
    summary: dict = {}
    estimates = predict_bop(root, oracle, masks="detections", detections=dets, progress=False, summary=summary)
    targets = ds.targets()
    assert len(oracle.calls) == sum(t.inst_count for t in targets)
    for obj_id, mask in oracle.calls:
        used = [d for d in dets if d.category_id == obj_id and np.array_equal(d.mask(), mask)]
        assert used and used[0].score >= 0.6, "the best-scoring (true) detection of the category is used"
    for e in estimates:
        n = sum(1 for x in estimates if (x.scene_id, x.im_id) == (e.scene_id, e.im_id))
        assert e.time == pytest.approx(0.010 * n + DetectorModel().time_s)
    with pytest.raises(BadInputError, match="detections"):
        predict_bop(root, oracle, masks="detections", progress=False)


@pytest.mark.slow
def test_cli_predict_bop_with_detections_then_eval(tmp_path, capsys):
    """The real estimator, real files on disk: detections JSON in, results CSV out, scored."""
    from posekit.cli import main
    from posekit.data.scenes import synthesize_bop_dataset
    from posekit.io.bop import BopDataset

    root = tmp_path / "bop"
    synthesize_bop_dataset("procedural", root, n_scenes=1, n_images=2, seed=11, width=320, height=240,
                           n_procedural_objects=3, objects_per_scene=(3, 3), progress=False)
    ds = BopDataset(root)
    det_path = write_detections(tmp_path / "detections.json", simulate_detections(ds, seed=2))
    out = tmp_path / "results.csv"
    assert main(["predict", "bop", "--dataset", str(root), "--detections", str(det_path), "--out", str(out),
                 "--quiet"]) == 0
    assert main(["eval", "bop", "--dataset", str(root), "--results", str(out), "--json", str(tmp_path / "s.json"),
                 "--no-progress"]) == 0
    scores = json.loads((tmp_path / "s.json").read_text())
    # procedural objects seen whole at close range: most poses must be right with detector masks
    assert scores["overall"]["add_s_recall"] >= 0.5, capsys.readouterr().out
