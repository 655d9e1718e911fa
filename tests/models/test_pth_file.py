"""The PyTorch-free `.pth` reader: committed files written by torch.save in
both layouts (no PyTorch needed), refusal of pickled code, bad files, and
with PyTorch installed, random round trips."""

import collections
import io
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest

from rmtl_tf.models import pth_file, torch_state

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
sys.path.insert(0, FIXTURES)
import write_pth_fixtures  # pylint: disable=wrong-import-position


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_committed_checkpoints_read_exactly(layout):
    path = os.path.join(FIXTURES, write_pth_fixtures.FILES[layout])
    assert zipfile.is_zipfile(path) == (layout == "zip")
    loaded = pth_file.load(path)
    state, extra = write_pth_fixtures.expected()
    assert list(loaded["state_dict"]) == list(state)  # Order kept.
    for name, value in state.items():
        got = loaded["state_dict"][name]
        assert got.dtype == value.dtype and got.shape == value.shape, name
        np.testing.assert_array_equal(got, value, err_msg=name)
    assert {k: loaded[k] for k in extra} == extra


def test_torch_state_reads_pth_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails.
    path = os.path.join(FIXTURES, write_pth_fixtures.FILES["legacy"])
    state_dict = torch_state.load_state_dict(path)
    # Unwrapped from "state_dict", the DataParallel "module." dropped.
    assert "conv1.weight" in state_dict and "bn1.running_var" in state_dict
    np.testing.assert_array_equal(
        state_dict["conv1.weight"],
        write_pth_fixtures.expected()[0]["module.conv1.weight"])


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def _zip_checkpoint(path, obj):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        archive.writestr("archive/version", "3\n")


@pytest.mark.parametrize("obj", [
    {"weights": _RunsCode()},
    collections.OrderedDict(a=[1, _RunsCode()]),
    {"module": zipfile.ZipFile},  # Any class, not only callables.
])
def test_pickled_code_is_refused(tmp_path, obj):
    path = str(tmp_path / "evil.pth")
    _zip_checkpoint(path, obj)
    with pytest.raises(pth_file.UnsafeCheckpointError, match="Refusing"):
        pth_file.load(path)
    with pytest.raises(ValueError, match="evil.pth.*Refusing"):
        torch_state.load_state_dict(path)


def test_legacy_pickled_code_is_refused(tmp_path):
    path = str(tmp_path / "evil_legacy.pth")
    with open(path, "wb") as f:
        for part in (pth_file.LEGACY_MAGIC, pth_file.LEGACY_PROTOCOL,
                     {"little_endian": True}, {"w": _RunsCode()}, []):
            pickle.dump(part, f, protocol=2)
    with pytest.raises(pth_file.UnsafeCheckpointError, match="posix.system"):
        pth_file.load(path)


def test_bad_files_are_named(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.pth.*not a PyTorch"):
        pth_file.load(str(text))
    other_zip = str(tmp_path / "other.pth")
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="no single data.pkl"):
        pth_file.load(other_zip)
    legacy = os.path.join(FIXTURES, write_pth_fixtures.FILES["legacy"])
    with open(legacy, "rb") as f:
        data = f.read()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[:-20])
    with pytest.raises(ValueError, match="truncated"):
        pth_file.load(str(truncated))


def test_random_round_trips_against_torch(tmp_path):
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    state = collections.OrderedDict()
    for i, dtype in enumerate((torch.float32, torch.float64, torch.float16,
                               torch.int64, torch.int8, torch.uint8)):
        shape = tuple(int(s) for s in torch.randint(1, 5, (i % 4,),
                                                    generator=gen))
        state[f"t{i}"] = (torch.randn(shape, generator=gen) * 50).to(dtype)
    state["strided"] = torch.randn(5, 6, generator=gen)[1::2, ::3]
    state["bf16"] = torch.randn(3, 4, generator=gen).bfloat16()
    for legacy in (False, True):
        path = str(tmp_path / f"r{legacy}.pth")
        torch.save({"nested": {"state": state}}, path,
                   _use_new_zipfile_serialization=not legacy)
        loaded = pth_file.load(path)["nested"]["state"]
        for name, tensor in state.items():
            ref = (tensor.float() if tensor.dtype == torch.bfloat16
                   else tensor).numpy()
            np.testing.assert_array_equal(loaded[name], ref, err_msg=name)
            assert loaded[name].dtype == ref.dtype


def test_module_docs_promise_no_torch_import():
    # The reader never imports torch, even when it is installed.
    source = io.open(pth_file.__file__, encoding="utf-8").read()
    assert "import torch" not in source
