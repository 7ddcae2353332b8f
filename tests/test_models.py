"""Backbones: output shapes, and flax == torch on the same weights and inputs."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtrack.models.alexnet import SiamFCAlexNet, alexnet_from_siamfc_torch
from jaxtrack.models.mobilenet_v2 import (MobileNetV2Features, block_specs,
                                          mobilenet_v2_from_torch, normalize)

SHARED_WEIGHTS = (Path(__file__).resolve().parents[1].parent / "shared" / "weights"
                  / "mobilenet_v2_imagenet_features.pt")


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


# ---------------------------------------------------------------------------- shapes

def test_alexnet_shapes():
    model = SiamFCAlexNet()
    z = jax.random.uniform(jax.random.PRNGKey(1), (2, 127, 127, 3)) * 255
    x = jax.ShapeDtypeStruct((1, 255, 255, 3), jnp.float32)
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), z)
    out, shallow = jax.jit(lambda v, z: model.apply(v, z, return_shallow=True))(variables, z)
    assert out.shape == (2, 6, 6, 256) and shallow.shape == (2, 12, 12, 256)
    assert jax.eval_shape(model.apply, variables, x).shape == (1, 22, 22, 256)
    assert jax.eval_shape(lambda v, x: model.apply(v, x, method="shallow"), variables, x).shape \
        == (1, 28, 28, 256)
    deep = jax.jit(lambda v, h: model.apply(v, h, method=SiamFCAlexNet.deep))(variables, shallow)
    np.testing.assert_allclose(deep, out, rtol=1e-5, atol=1e-4)


def test_alexnet_train_updates_batch_stats():
    model = SiamFCAlexNet()
    z = jax.random.uniform(jax.random.PRNGKey(1), (2, 127, 127, 3)) * 255
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), z)
    _, upd = jax.jit(lambda v, z: model.apply(v, z, train=True, mutable=["batch_stats"]))(variables, z)
    # momentum 0.95: new mean = 0.95 * 0 + 0.05 * batch mean
    assert not np.allclose(upd["batch_stats"]["bn1"]["mean"], 0.0)


def test_mobilenet_shapes_and_taps():
    x = jax.ShapeDtypeStruct((1, 128, 128, 3), jnp.float32)
    model = MobileNetV2Features(taps=(0, 3, 6, 13, 17, 18))
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)

    def shapes(module):  # abstract evaluation: shapes without the compute
        out = jax.eval_shape(module.apply, variables, x)
        return jax.tree.map(lambda a: a.shape, out)

    assert shapes(model) == {0: (1, 64, 64, 32), 3: (1, 32, 32, 24), 6: (1, 16, 16, 32),
                             13: (1, 8, 8, 96), 17: (1, 4, 4, 320), 18: (1, 4, 4, 1280)}
    assert shapes(MobileNetV2Features(last_block=13)) == (1, 8, 8, 96)
    assert shapes(MobileNetV2Features()) == (1, 4, 4, 1280)
    assert shapes(MobileNetV2Features(taps=(6, 13, 17), dilate_after_stride8=True)) == {
        6: (1, 16, 16, 32), 13: (1, 16, 16, 96), 17: (1, 16, 16, 320)}
    # one set of variables (all 19 blocks) serves a truncated model too
    assert variables["params"].keys() == {f"features_{i}" for i in range(19)}
    with pytest.raises(ValueError):
        shapes(MobileNetV2Features(last_block=10, taps=(13,)))


def test_dilation_schedule_follows_pysot():
    specs = {s.index: (s.stride, s.dilation) for s in block_specs(True)}
    assert specs[7] == (1, 1) and specs[14] == (1, 2)
    assert all(specs[i] == (1, 2) for i in range(8, 14))
    assert all(specs[i] == (1, 4) for i in (15, 16, 17))
    assert all(s.dilation == 1 for s in block_specs(False))


# ---------------------------------------------------------------------------- torch references

def _torch_mobilenet(dilated: bool):
    """torchvision-layout MobileNetV2 ``features`` (the original flat ``conv.N`` keys).

    Written out independently of jaxtrack: strides and dilations as pysot's mobile_v2.py.
    """
    torch = pytest.importorskip("torch")
    nn = torch.nn

    def conv_bn(cin, cout, k, s):
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU6())

    class Block(nn.Module):
        def __init__(self, cin, cout, s, t, d):
            super().__init__()
            hid = cin * t
            layers = [] if t == 1 else [nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6()]
            layers += [nn.Conv2d(hid, hid, 3, s, d, dilation=d, groups=hid, bias=False),
                       nn.BatchNorm2d(hid), nn.ReLU6(),
                       nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)
            self.res = s == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.res else self.conv(x)

    # (t, c, n, s, d), pysot's table for the dilated variant
    table = [(1, 16, 1, 1, 1), (6, 24, 2, 2, 1), (6, 32, 3, 2, 1), (6, 64, 4, 2, 1),
             (6, 96, 3, 1, 1), (6, 160, 3, 2, 1), (6, 320, 1, 1, 1)]
    if dilated:
        table = [(1, 16, 1, 1, 1), (6, 24, 2, 2, 1), (6, 32, 3, 2, 1), (6, 64, 4, 1, 2),
                 (6, 96, 3, 1, 2), (6, 160, 3, 1, 4), (6, 320, 1, 1, 4)]
    layers, cin, last_d = [conv_bn(3, 32, 3, 2)], 32, 1
    for t, c, n, s, d in table:
        for i in range(n):
            dd = (d if d == last_d else max(d // 2, 1)) if i == 0 else d
            layers.append(Block(cin, c, s if i == 0 else 1, t, dd))
            cin = c
        last_d = d
    layers.append(conv_bn(320, 1280, 1, 1))
    return nn.Sequential(*layers).eval()


def _randomize_bn(module, seed=0):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.fixture(scope="module")
def mobilenet_state_dict():
    """The real ImageNet weights when the shared folder is there, else random torch weights."""
    torch = pytest.importorskip("torch")
    if SHARED_WEIGHTS.is_file():
        return torch.load(SHARED_WEIGHTS, map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    ref = _torch_mobilenet(False)
    _randomize_bn(ref)
    return {f"features.{k}": v for k, v in ref.state_dict().items()}


def _torch_taps(ref, x_nchw, taps):
    out, h = {}, x_nchw
    for i, layer in enumerate(ref):
        h = layer(h)
        if i in taps:
            out[i] = h.permute(0, 2, 3, 1).detach().numpy()
    return out


@pytest.mark.parametrize("dilated", [False, True])
def test_mobilenet_matches_torch(mobilenet_state_dict, dilated):
    torch = pytest.importorskip("torch")
    ref = _torch_mobilenet(dilated)
    ref.load_state_dict({k[len("features."):]: v for k, v in mobilenet_state_dict.items()})
    variables = mobilenet_v2_from_torch({k: v.numpy() for k, v in mobilenet_state_dict.items()})

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (2, 127, 127, 3)).astype(np.float32)  # odd size: tests padding
    taps = (6, 13, 17, 18)
    with torch.no_grad():
        want = _torch_taps(ref, torch.from_numpy(np.array(normalize(image))).permute(0, 3, 1, 2), taps)
    got = jax.jit(MobileNetV2Features(taps=taps, dilate_after_stride8=dilated).apply)(variables, image)
    for t in taps:
        assert got[t].shape == want[t].shape, t
        err = rel_err(got[t], want[t])
        print(f"features.{t} dilated={dilated}: max|diff|/max|torch| = {err:.2e}")
        assert err < 1e-4, (t, err)


def test_mobilenet_converter_accepts_new_torchvision_layout(mobilenet_state_dict):
    """The nested torchvision >= 0.4 keys (conv.0.0 …) convert to the same variables."""
    old = {k: v.numpy() for k, v in mobilenet_state_dict.items()}
    rename = {1: {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}}
    expanded = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
    new = {}
    for k, v in old.items():
        parts = k.split(".")
        if len(parts) > 3 and parts[2] == "conv":
            table = rename.get(int(parts[1]), expanded)
            k = ".".join(parts[:3] + [table[parts[3]]] + parts[4:])
        new["module." + k] = v
    a, b = mobilenet_v2_from_torch(old), mobilenet_v2_from_torch(new)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_mobilenet_converter_names_bad_key(mobilenet_state_dict):
    sd = {k: v.numpy() for k, v in mobilenet_state_dict.items()}
    sd["features.13.conv.3.weight"] = np.zeros((576, 1, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"features\.13\.conv\.3\.weight.*\(576, 1, 3, 3\).*\(576, 1, 5, 5\)"):
        mobilenet_v2_from_torch(sd)
    del sd["features.13.conv.3.weight"]
    with pytest.raises(KeyError, match=r"features\.13\.conv\.3\.weight"):
        mobilenet_v2_from_torch(sd)


def _torch_siamfc_alexnet():
    """siamfc-pytorch AlexNetV1 (backbones.py), rebuilt here with the same module names."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-6, momentum=0.05)

    class AlexNetV1(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Sequential(nn.Conv2d(3, 96, 11, 2), bn(96), nn.ReLU(), nn.MaxPool2d(3, 2))
            self.conv2 = nn.Sequential(nn.Conv2d(96, 256, 5, 1, groups=2), bn(256), nn.ReLU(),
                                       nn.MaxPool2d(3, 2))
            self.conv3 = nn.Sequential(nn.Conv2d(256, 384, 3, 1), bn(384), nn.ReLU())
            self.conv4 = nn.Sequential(nn.Conv2d(384, 384, 3, 1, groups=2), bn(384), nn.ReLU())
            self.conv5 = nn.Sequential(nn.Conv2d(384, 256, 3, 1, groups=2))

        def forward(self, x):
            shallow = self.conv2(self.conv1(x))
            return self.conv5(self.conv4(self.conv3(shallow))), shallow

    class Net(nn.Module):  # siamfc-pytorch's Net(backbone, head) gives the "backbone." prefix
        def __init__(self):
            super().__init__()
            self.backbone = AlexNetV1()

    return Net().eval()


def test_alexnet_matches_siamfc_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = _torch_siamfc_alexnet()
    _randomize_bn(net, seed=1)
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    assert "backbone.conv1.1.running_mean" in sd
    variables = alexnet_from_siamfc_torch(sd)
    # the prefix is optional
    jax.tree.map(np.testing.assert_array_equal, variables,
                 alexnet_from_siamfc_torch({k[len("backbone."):]: v for k, v in sd.items()}))

    rng = np.random.default_rng(0)
    model = SiamFCAlexNet()
    for size in (127, 255):
        image = rng.uniform(0, 255, (2, size, size, 3)).astype(np.float32)
        with torch.no_grad():
            want, want_shallow = net.backbone(torch.from_numpy(image).permute(0, 3, 1, 2))
        got, got_shallow = jax.jit(model.apply, static_argnames="return_shallow")(
            variables, image, return_shallow=True)
        assert rel_err(got, want.permute(0, 2, 3, 1).numpy()) < 1e-4
        assert rel_err(got_shallow, want_shallow.permute(0, 2, 3, 1).numpy()) < 1e-4


def test_alexnet_converter_names_bad_shape():
    pytest.importorskip("torch")
    sd = {k: v.numpy() for k, v in _torch_siamfc_alexnet().state_dict().items()}
    sd["backbone.conv4.0.weight"] = np.zeros((384, 384, 3, 3), np.float32)  # groups=1 by mistake
    with pytest.raises(ValueError, match=r"conv4\.0\.weight.*\(384, 192, 3, 3\).*\(384, 384, 3, 3\)"):
        alexnet_from_siamfc_torch(sd)
