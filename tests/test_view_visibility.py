"""Visible fractions of the view engine's rendered targets (BOP's visib_fract) and the benchmark's
errors by visibility: measuring them leaves the crops unchanged."""

import numpy as np
import pytest

from posekit.data.view_crops import ViewCropConfig, load_view_objects, render_view_crop
from posekit.view.evaluation import errors_by_visibility

CROP = {"image_size": 32, "supersample": 1, "camera_width": 320, "camera_height": 240, "focal": 300.0}


@pytest.fixture(scope="module")
def objects():
    return load_view_objects("procedural", n_procedural=3, seed=1)


def test_visibility_leaves_the_crop_unchanged_and_is_one_without_occluders(objects):
    cfg = ViewCropConfig(**CROP, occluder_probability=0.0, distractor_probability=0.0)
    for seed in range(3):
        plain = render_view_crop(objects, seed % 3, np.random.default_rng(seed), cfg)
        seen = render_view_crop(objects, seed % 3, np.random.default_rng(seed), cfg, visibility=True)
        np.testing.assert_array_equal(plain.image, seen.image)  # no extra random draw
        np.testing.assert_array_equal(plain.R_crop_obj, seen.R_crop_obj)
        assert np.isnan(plain.visible_fraction)
        assert seen.visible_fraction == pytest.approx(1.0)


def test_an_occluder_in_front_of_the_centre_lowers_the_visible_fraction(objects):
    cfg = ViewCropConfig(**CROP, occluder_probability=1.0, max_occluders=2, occluder_offset=[0.0, 0.05],
                         distractor_probability=0.0)
    fractions = [render_view_crop(objects, 0, np.random.default_rng(s), cfg, visibility=True).visible_fraction
                 for s in range(4)]
    assert all(0.0 <= f < 0.95 for f in fractions), fractions


def test_errors_by_visibility_bins_a_worked_example():
    errors = [5.0, 40.0, 10.0, 170.0, 20.0, 25.0]
    visible = [1.0, 0.95, 0.7, 0.05, 0.0, 0.9]
    parts = errors_by_visibility(errors, visible, bins=(0.0, 0.1, 0.9, 1.0))
    assert [p["n"] for p in parts] == [2, 1, 3]  # 0.9 and 1.0 fall in the last bin
    assert parts[0]["acc30"] == 0.5 and parts[0]["median_err_deg"] == 95.0
    assert parts[1]["acc15"] == 1.0 and parts[1]["median_err_deg"] == 10.0
    assert parts[2]["acc30"] == pytest.approx(2 / 3) and parts[2]["median_err_deg"] == 25.0
    empty = errors_by_visibility([5.0], [1.0], bins=(0.0, 0.5, 1.0))[0]
    assert empty["n"] == 0 and np.isnan(empty["acc30"])
