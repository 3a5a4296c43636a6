import pytest
import torch

from jojogan.devices import pick_device


def test_auto_picks_an_available_device(monkeypatch):
    monkeypatch.delenv("JOJOGAN_DEVICE", raising=False)
    dev = pick_device("auto")
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    else:
        assert dev.type in {"mps", "cpu"}


def test_environment_overrides_auto(monkeypatch):
    monkeypatch.setenv("JOJOGAN_DEVICE", "cpu")
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device(None) == torch.device("cpu")


def test_explicit_names_and_devices_pass_through():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


def test_bad_name_is_a_clear_error():
    with pytest.raises(ValueError, match="not a device name"):
        pick_device("gpu0")
