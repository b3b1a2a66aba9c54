"""posekit.io.weights: nothing from a file runs unless the caller opts in to pickle."""

from __future__ import annotations

import pathlib
import pickle

import numpy as np
import pytest
import torch

from posekit.errors import BadInputError, CorruptFileError, MissingFileError, UnsafeFileError
from posekit.io.weights import load_npz, load_pickle, load_weights, save_weights


class WritesAFile:
    """Unpickling this calls Path.write_text: the shape of a malicious checkpoint."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.marker, "code ran"))


def test_save_load_roundtrip_with_metadata(tmp_path):
    state = {
        "layer.weight": torch.randn(3, 4),
        "layer.bias": torch.arange(3.0),
        "step": torch.tensor(7),
    }
    meta = {"name": "tiny", "epochs": 3, "lr": 1e-3, "tags": ["a", "b"]}
    path = save_weights(state, tmp_path / "w.pt", metadata=meta)
    loaded, got_meta = load_weights(path, return_metadata=True)
    assert set(loaded) == set(state) and got_meta == meta
    for k, v in state.items():
        assert torch.equal(loaded[k], v)
    assert torch.equal(load_weights(path)["layer.bias"], state["layer.bias"])


def test_plain_torch_state_dict_loads_as_is(tmp_path):
    model = torch.nn.Linear(2, 3)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    state, meta = load_weights(tmp_path / "plain.pt", return_metadata=True)
    assert meta == {} and torch.equal(state["weight"], model.weight.detach())


def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(2), "payload": WritesAFile(marker)}, path)
    assert not marker.exists()
    with pytest.raises(UnsafeFileError, match="allow_pickle=True") as info:
        load_weights(path)
    assert "pathlib" in str(info.value)  # says what the file would import
    assert not marker.exists()
    # The payload is real: opting in runs it (which is why it is opt-in).
    loaded = load_weights(path, allow_pickle=True)
    assert torch.equal(loaded["weight"], torch.ones(2)) and marker.read_text() == "code ran"


def test_pkl_is_refused_unless_opted_in(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "model.pkl"
    with open(path, "wb") as f:
        pickle.dump({"v": np.arange(3), "x": WritesAFile(marker)}, f)
    for load in (load_weights, load_pickle):
        with pytest.raises(UnsafeFileError, match="allow_pickle=True"):
            load(path)
    assert not marker.exists()
    obj = load_pickle(path, allow_pickle=True)
    np.testing.assert_array_equal(obj["v"], [0, 1, 2])
    assert marker.exists()


def test_corrupt_and_missing_checkpoints(tmp_path):
    save_weights({"w": torch.ones(100)}, tmp_path / "good.pt")
    blob = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage\xff" * 50)
    for name in ("cut.pt", "junk.pt"):
        with pytest.raises(CorruptFileError):
            load_weights(tmp_path / name)
    with pytest.raises(MissingFileError):
        load_weights(tmp_path / "none.pt")


def test_save_refuses_state_that_needs_pickle(tmp_path):
    with pytest.raises(BadInputError, match="only load with pickle"):
        save_weights({"w": torch.ones(2), "obj": WritesAFile(tmp_path / "m")}, tmp_path / "x.pt")
    with pytest.raises(BadInputError, match="metadata"):
        save_weights({"w": torch.ones(2)}, tmp_path / "x.pt", metadata={"f": object()})
    with pytest.raises(BadInputError, match="state must be a dict"):
        save_weights([torch.ones(2)], tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


def test_save_replaces_atomically(tmp_path):
    path = tmp_path / "w.pt"
    save_weights({"w": torch.zeros(2)}, path)
    save_weights({"w": torch.ones(2)}, path)
    assert torch.equal(load_weights(path)["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]


def test_load_npz_body_model_arrays(tmp_path):
    arrays = {
        "v_template": np.random.default_rng(0).normal(size=(5, 3)),
        "kintree_table": np.arange(6).reshape(2, 3),
    }
    np.savez(tmp_path / "body.npz", **arrays)
    got = load_npz(tmp_path / "body.npz")
    assert set(got) == set(arrays)
    for k, v in arrays.items():
        np.testing.assert_array_equal(got[k], v)


def test_load_npz_refuses_object_arrays(tmp_path):
    marker = tmp_path / "marker.txt"
    np.savez(tmp_path / "obj.npz", ok=np.ones(2), bad=np.array([WritesAFile(marker)], dtype=object))
    with pytest.raises(UnsafeFileError, match=r"\['bad'\]"):
        load_npz(tmp_path / "obj.npz")
    assert not marker.exists()
    got = load_npz(tmp_path / "obj.npz", allow_pickle=True)
    np.testing.assert_array_equal(got["ok"], np.ones(2))
    assert marker.exists()


def test_load_npz_bad_files(tmp_path):
    with pytest.raises(MissingFileError):
        load_npz(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"\x00garbage\xff" * 50)
    with pytest.raises(CorruptFileError):
        load_npz(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(CorruptFileError, match="single .npy"):
        load_npz(tmp_path / "single.npy")
    with open(tmp_path / "pickled.npz", "wb") as f:
        pickle.dump({"a": 1}, f)
    with pytest.raises(UnsafeFileError):
        load_npz(tmp_path / "pickled.npz")
    np.savez(tmp_path / "good.npz", a=np.arange(1000))
    blob = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CorruptFileError):
        load_npz(tmp_path / "cut.npz")
