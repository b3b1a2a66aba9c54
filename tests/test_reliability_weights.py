"""Weights and devices (issue 14): damaged files refused, misfits named, one device check."""

from __future__ import annotations

import shutil

import pytest
import torch

from posekit import pretrained
from posekit.device import resolve_device
from posekit.errors import BadInputError, CorruptFileError
from posekit.io.weights import check_zip_integrity, fit_state_dict, load_weights, save_weights


def _flip_in_tensor_data(path, value: float = 1.0):
    """Flip one bit of the first stored float32 equal to ``value`` (inside a tensor record)."""
    data = bytearray(path.read_bytes())
    i = data.find(torch.tensor([value]).numpy().tobytes())
    assert i > 0
    data[i + 3] ^= 0x40
    path.write_bytes(bytes(data))


def test_bit_flipped_weights_are_refused(tmp_path):
    path = save_weights({"w": torch.arange(100, dtype=torch.float32)}, tmp_path / "w.pt")
    assert torch.equal(load_weights(path)["w"], torch.arange(100, dtype=torch.float32))
    _flip_in_tensor_data(path)
    with pytest.raises(CorruptFileError, match="checksum"):
        load_weights(path)


def test_bit_flipped_shipped_model_is_refused(tmp_path):
    name = pretrained.available()[0]
    copy = tmp_path / f"{name}.pt"
    shutil.copy(pretrained.resolve(name), copy)
    check_zip_integrity(copy)  # intact
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError):
        pretrained.load(copy)


@pytest.mark.parametrize("bad", [None, 7, b"view-symsol", 1.5])
def test_pretrained_names_must_be_strings_or_paths(bad):
    with pytest.raises(BadInputError, match="path"):
        pretrained.load(bad)


def test_save_weights_with_unpicklable_content(tmp_path):
    with pytest.raises(BadInputError, match="lambda|functions"):
        save_weights({"f": lambda: 0}, tmp_path / "a.pt")
    with pytest.raises(BadInputError, match="metadata"):
        save_weights({"w": torch.zeros(1)}, tmp_path / "b.pt", metadata={"f": lambda: 0})
    assert list(tmp_path.iterdir()) == []


def test_fit_state_dict_names_what_does_not_fit():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    good = {k: torch.ones_like(v) for k, v in net.state_dict().items()}
    assert fit_state_dict(net, good) is net
    assert torch.equal(net[0].weight, torch.ones(4, 3))
    wrong_shape = dict(good, **{"2.weight": torch.zeros(3, 4)})
    with pytest.raises(CorruptFileError, match=r"2\.weight: \(3, 4\) in the file, \(2, 4\) in the network"):
        fit_state_dict(net, wrong_shape, "w.pt")
    with pytest.raises(CorruptFileError, match=r"missing: \['0.bias'\]"):
        fit_state_dict(net, {k: v for k, v in good.items() if k != "0.bias"})
    with pytest.raises(CorruptFileError, match=r"unexpected: \['extra'\]"):
        fit_state_dict(net, dict(good, extra=torch.zeros(1)))
    with pytest.raises(CorruptFileError, match="not tensors"):
        fit_state_dict(net, dict(good, **{"0.bias": [1, 2, 3, 4]}))
    with pytest.raises(CorruptFileError, match="state dict"):
        fit_state_dict(net, torch.zeros(3))
    assert fit_state_dict(net, {k: v for k, v in good.items() if k != "0.bias"}, optional=["0.bias"]) is net


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("tpu", "gpu", 3, ["cpu"], "cuda:x"):
        with pytest.raises(BadInputError, match="device"):
            resolve_device(bad)
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
        with pytest.raises(BadInputError, match="GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(BadInputError, match="no CUDA GPU"):
            resolve_device("cuda")
