"""posekit bench sensor --quick: JSON keys, PNG, and the sensor model measured as it is built."""

import json

import pytest

from posekit.cli import main
from posekit.data.sensor import DepthSensorModel


@pytest.mark.slow
def test_bench_sensor_quick_writes_json_and_png(tmp_path, capsys):
    out_json, out_png = tmp_path / "sensor.json", tmp_path / "sensor.png"
    assert main(["bench", "sensor", "--quick", "--json", str(out_json), "--png", str(out_png)]) == 0
    assert "residual 21x21 @1.1 m" in capsys.readouterr().out
    result = json.loads(out_json.read_text())
    assert result["benchmark"] == "sensor"
    assert set(result["methods"]) == {"posekit_sensor", "gaussian_1mm", "clean"}
    for entry in result["methods"].values():
        for key in ("residual_21_mm", "residual_5_mm", "depth_level_step", "hole_fraction",
                    "shadow_right_fraction", "shadow_width_px", "grazing_p99_deg"):
            assert key in entry
        assert set(entry["residual_21_mm"]) == {"0.7", "0.9", "1.1", "1.3"}
    assert out_png.stat().st_size > 10_000 and out_png.read_bytes()[:4] == b"\x89PNG"

    model = DepthSensorModel()
    ours, peer, clean = (result["methods"][m] for m in ("posekit_sensor", "gaussian_1mm", "clean"))
    # quantisation: the model's step is measured back; Gaussian noise has no levels
    assert ours["depth_level_step"] == pytest.approx(model.inverse_depth_step, rel=0.1)
    assert peer["depth_level_step"] == 0.0
    # noise grows with depth as the model's axial sigma does; the peer's stays at 1 mm
    assert ours["residual_21_mm"]["1.3"] > 1.5 * ours["residual_21_mm"]["0.7"]
    assert peer["residual_21_mm"]["1.3"] == pytest.approx(1.0, rel=0.15)
    assert clean["residual_21_mm"]["0.9"] < 0.05
    # shadows lie on the projector's side (left projector: right of the nearer surface)
    assert ours["shadow_right_fraction"] > 0.5 and peer["hole_fraction"] == 0.0
    assert ours["fitted_model"]["inverse_depth_step"] == pytest.approx(model.inverse_depth_step, rel=0.1)
