"""ATOM: ResNet-18 / IoU-Net loading from a pytracking-layout checkpoint, export, the
GN-CG classifier, the sample memory, and the tracker contract."""
import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxtrack.models import iounet as iou_lib
from jaxtrack.models.resnet18 import ResNet18
from jaxtrack.trackers import atom
from jaxtrack.trackers import atom_optim as optim

torch = pytest.importorskip("torch")
nn = torch.nn


# ------------------------------------------------------------------ torch references (test only)

class TorchBasicBlock(nn.Module):
    def __init__(self, cin, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.downsample = None
        if stride != 1 or cin != c:
            self.downsample = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + (x if self.downsample is None else self.downsample(x)))


class TorchResNet18Trunk(nn.Module):
    """torchvision resnet18 key names (conv1, bn1, layer1..3); no torchvision needed."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = nn.Sequential(TorchBasicBlock(64, 64, 1), TorchBasicBlock(64, 64, 1))
        self.layer2 = nn.Sequential(TorchBasicBlock(64, 128, 2), TorchBasicBlock(128, 128, 1))
        self.layer3 = nn.Sequential(TorchBasicBlock(128, 256, 2), TorchBasicBlock(256, 256, 1))

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        l2 = self.layer2(self.layer1(x))
        return l2, self.layer3(l2)


def _tconv(cin, cout, k=3, p=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=p, bias=True), nn.BatchNorm2d(cout), nn.ReLU())


class TorchLinearBlock(nn.Module):
    def __init__(self, cin, cout, size):
        super().__init__()
        self.linear = nn.Linear(cin * size * size, cout)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = self.linear(x.reshape(x.shape[0], -1))
        return torch.relu(self.bn(x.reshape(x.shape[0], -1, 1, 1))).reshape(x.shape[0], -1)


def torch_prroi(feat, rois, out, scale):
    """Closed-form PrRoIPool in torch (its 1-D weights are verified by test_prroi_pool)."""
    def hat_int(t):
        t = t.clamp(-1, 1)
        return torch.where(t <= 0, 0.5 * (t + 1) ** 2, 1 - 0.5 * (1 - t) ** 2)

    def weights(a, b, n, size):
        e = a + (b - a) * torch.arange(n + 1, dtype=torch.float64) / n
        c = hat_int(e[:, None] - torch.arange(size, dtype=torch.float64)[None])
        return c[1:] - c[:-1]

    res = []
    for bi, x1, y1, x2, y2 in rois.double().tolist():
        x1, y1, x2, y2 = (v * scale for v in (x1, y1, x2, y2))
        wy = weights(torch.tensor(y1), torch.tensor(y2), out, feat.shape[2])
        wx = weights(torch.tensor(x1), torch.tensor(x2), out, feat.shape[3])
        area = (y2 - y1) / out * (x2 - x1) / out
        p = torch.einsum("ph,chw,qw->cpq", wy, feat[int(bi)].double(), wx) / area
        res.append(p.float())
    return torch.stack(res)


class TorchAtomIoUNet(nn.Module):
    """pytracking's AtomIoUNet layer names and forward, for the conversion test."""
    def __init__(self):
        super().__init__()
        self.conv3_1r = _tconv(128, 128)
        self.conv3_1t = _tconv(128, 256)
        self.conv3_2t = _tconv(256, 256)
        self.fc3_1r = _tconv(128, 256, 3, 0)
        self.conv4_1r = _tconv(256, 256)
        self.conv4_1t = _tconv(256, 256)
        self.conv4_2t = _tconv(256, 256)
        self.fc34_3r = _tconv(512, 256, 1, 0)
        self.fc34_4r = _tconv(512, 256, 1, 0)
        self.fc3_rt = TorchLinearBlock(256, 256, 5)
        self.fc4_rt = TorchLinearBlock(256, 256, 3)
        self.iou_predictor = nn.Linear(512, 1)

    def forward(self, f3r, f4r, bb, f3t, f4t, props):
        b = bb.shape[0]
        idx = torch.arange(b, dtype=torch.float32)[:, None]
        roi = torch.cat([idx, bb[:, :2], bb[:, :2] + bb[:, 2:]], 1)
        r3 = self.fc3_1r(torch_prroi(self.conv3_1r(f3r), roi, 3, 1 / 8))
        r4 = torch_prroi(self.conv4_1r(f4r), roi, 1, 1 / 16)
        f34 = torch.cat([r3, r4], 1)
        m3, m4 = self.fc34_3r(f34).reshape(b, -1), self.fc34_4r(f34).reshape(b, -1)
        c3 = self.conv3_2t(self.conv3_1t(f3t)) * m3[:, :, None, None]
        c4 = self.conv4_2t(self.conv4_1t(f4t)) * m4[:, :, None, None]
        n = props.shape[1]
        pidx = torch.arange(b, dtype=torch.float32).repeat_interleave(n)[:, None]
        p = props.reshape(-1, 4)
        rois = torch.cat([pidx, p[:, :2], p[:, :2] + p[:, 2:]], 1)
        f = torch.cat([self.fc3_rt(torch_prroi(c3, rois, 5, 1 / 8)), self.fc4_rt(torch_prroi(c4, rois, 3, 1 / 16))], 1)
        return self.iou_predictor(f).reshape(b, n)


class OnlyForTestConstructor:
    """Stands for pytracking's pickled ``constructor`` entry; must never be imported on load."""
    def __init__(self):
        self.fun_name = "atom_resnet18"
        self.fun_module = "ltr.models.tracking.atom"


def _randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


@pytest.fixture(scope="module")
def pytracking_checkpoint(tmp_path_factory):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    trunk, net = TorchResNet18Trunk().eval(), TorchAtomIoUNet().eval()
    with torch.no_grad():
        _randomize_bn(trunk, gen)
        _randomize_bn(net, gen)
    sd = {f"feature_extractor.{k}": v for k, v in trunk.state_dict().items()}
    sd.update({f"bb_regressor.{k}": v for k, v in net.state_dict().items()})
    path = tmp_path_factory.mktemp("atom") / "atom_default.pth"
    torch.save({"net": sd, "constructor": OnlyForTestConstructor(), "net_type": "ATOMnet", "epoch": 50}, path)
    return path, trunk, net


def test_load_pytracking_checkpoint_resnet18_and_iounet(pytracking_checkpoint):
    path, trunk, net = pytracking_checkpoint
    loaded = iou_lib.load_pytracking_atom(path)
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    from jaxtrack.models.mobilenet_v2 import normalize
    with torch.no_grad():
        t2, t3 = trunk(torch.from_numpy(np.asarray(normalize(img))).permute(0, 3, 1, 2))
    out = ResNet18().apply(loaded["backbone"], img)
    np.testing.assert_allclose(out["layer2"], t2.permute(0, 2, 3, 1).numpy(), atol=2e-4, rtol=1e-3)
    np.testing.assert_allclose(out["layer3"], t3.permute(0, 2, 3, 1).numpy(), atol=2e-4, rtol=1e-3)

    f3r, f3t = rng.standard_normal((2, 2, 16, 16, 128)).astype(np.float32)
    f4r, f4t = rng.standard_normal((2, 2, 8, 8, 256)).astype(np.float32)
    bb = np.array([[30.0, 40.2, 50.5, 44.0], [60.3, 20.0, 35.0, 60.0]], np.float32)
    props = bb[:, None] + rng.uniform(-6, 6, (2, 5, 4)).astype(np.float32)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1)))  # noqa: E731
    with torch.no_grad():
        want = net(t(f3r), t(f4r), torch.from_numpy(bb), t(f3t), t(f4t), torch.from_numpy(props)).numpy()
    got = iou_lib.AtomIoUNet().apply(loaded["iounet"], f3r, f4r, bb, f3t, f4t, props)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-3)


def test_wrong_shape_names_key(pytracking_checkpoint):
    from jaxtrack.formats.torch_pickle import load_state_dict
    sd = load_state_dict(pytracking_checkpoint[0], allow_unknown_objects="skip")
    sd["bb_regressor.fc3_rt.linear.weight"] = np.zeros((256, 10), np.float32)
    with pytest.raises(ValueError, match="fc3_rt.linear.weight.*\\(256, 6400\\).*\\(256, 10\\)"):
        iou_lib.iounet_from_pytracking(sd)


def test_iounet_export_roundtrip():
    from jax import export
    from jaxtrack.trackers import atom
    head = atom.init_head(atom.ATOMConfig(), jax.random.PRNGKey(0))
    net = iou_lib.AtomIoUNet()
    f3, f4 = jnp.ones((1, 36, 36, 128)), jnp.ones((1, 18, 18, 256)) * 0.5
    bb = jnp.array([[100.0, 110.0, 80.0, 60.0]])
    props = bb[:, None] + jnp.array([[[0, 0, 0, 0], [5.0, -3.0, 10.0, 2.0]]])

    def fwd(f3, f4, bb, props):
        return net.apply(head["iounet"], f3, f4, bb, f3, f4, props)

    exp = export.export(jax.jit(fwd))(f3, f4, bb, props)
    assert len(exp.mlir_module_serialized) > 0
    np.testing.assert_allclose(exp.call(f3, f4, bb, props), fwd(f3, f4, bb, props), rtol=1e-5, atol=1e-5)
    from jaxtrack.export import from_bytes, to_bytes
    again = from_bytes(to_bytes(exp))            # jax's format, or the fallback without flatbuffers
    np.testing.assert_allclose(again.call(f3, f4, bb, props), fwd(f3, f4, bb, props), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ classifier

def _problem(seed=0, n=8, d=24):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((n, 10, 10, d)), jnp.float32)
    y = jnp.stack([jnp.asarray(np.exp(-0.5 * ((np.arange(11)[:, None] - 5 - i % 3) ** 2 +
                                             (np.arange(11)[None] - 5) ** 2) / 1.5 ** 2), jnp.float32)
                   for i in range(n)])
    w = jnp.full((n,), 1.0 / n)
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    var = (jax.random.normal(k1, (4, 4, 16)) / 256, jax.random.normal(k2, (d, 16)) / np.sqrt(d))
    res = lambda v: optim.joint_residuals(v, x, y, w, 0.1, 1e-4, 0.05)  # noqa: E731
    return res, var


def test_gauss_newton_cg_beats_plain_gradient_descent_at_equal_cost():
    res, var = _problem()
    _, gn = jax.jit(lambda v: optim.gauss_newton_cg(res, v, 3, 5))(var)
    assert np.all(np.diff(np.asarray(gn)) < 0)               # every GN step lowers the loss
    cost = optim.jacobian_products_gn(3, 5)
    gd = [float(jax.jit(lambda v, s=s: optim.gradient_descent(res, v, cost, s, momentum=0.0))(var)[1][-1])
          for s in (1e-3, 3e-3, 1e-2, 2e-2)]               # plain GD, best of a step sweep
    assert float(gn[-1]) < min(np.nan_to_num(gd, nan=np.inf))


def test_apply_filter_matches_convolution():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((3, 9, 9, 5)), jnp.float32)
    f = jnp.asarray(rng.standard_normal((4, 4, 5)), jnp.float32)
    ref = jax.lax.conv_general_dilated(x, f[..., None], (1, 1), ((2, 2), (2, 2)),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))[..., 0]
    np.testing.assert_allclose(optim.apply_filter(x, f), ref, atol=1e-4)


def _np_update_weights(sw, prev, num_init, lr, min_w):
    """pytracking's update_sample_weights, in numpy (reference)."""
    sw = sw.copy()
    r = int(np.argmin(sw[num_init:])) + num_init
    if prev is None:
        sw /= 1 - lr
        sw[r] = lr
    else:
        sw[r] = sw[prev] / (1 - lr)
    sw /= sw.sum()
    if sw[:num_init].sum() < min_w:
        sw /= min_w + sw[num_init:].sum()
        sw[:num_init] = min_w / num_init
    return sw, r


def test_sample_memory_weights_match_pytracking():
    m, num_init = 12, 3
    w = np.zeros(m, np.float32)
    w[:num_init] = 1 / num_init
    ref, prev = w.astype(np.float64), None
    wj, pj = jnp.asarray(w), jnp.array(-1)
    for _ in range(20):
        ref, prev = _np_update_weights(ref, prev, num_init, 0.1, 0.25)
        wj, pj = optim.update_sample_weights(wj, pj, num_init, 0.1, 0.25)
        assert int(pj) == prev
        np.testing.assert_allclose(np.asarray(wj), ref, atol=1e-6)
    assert abs(float(wj[:num_init].sum()) - 0.25) < 1e-5


# ------------------------------------------------------------------ tracker

@pytest.mark.slow
def test_tracker_runs_and_compiles_once():
    import jaxtrack
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.driver import JitTracker, run_sequence
    t = jaxtrack.make_tracker("atom", allow_random=True, augment=False, memory_size=24,
                              init_gn_iter=2, init_cg_iter=3, train_skipping=2)
    jt = JitTracker(t)
    seq = make_sequence(0, num_frames=6, size=(160, 200))
    r = run_sequence(jt, seq, seed=0)
    assert np.all(np.isfinite(r.boxes)) and r.boxes.shape == (6, 4)
    assert jt.num_compilations == 2


def test_unknown_backbone_and_optimizer_raise():
    import jaxtrack
    with pytest.raises(ValueError, match="optimizer"):
        jaxtrack.make_tracker("atom", allow_random=True, optimizer="adam", params={})
    with pytest.raises(TypeError, match="unknown config field"):
        jaxtrack.make_tracker("atom", allow_random=True, no_such_field=1, params={})


def test_float16_head_checkpoint_reads_back_as_float32(tmp_path):
    """``train_iounet.py --export-dtype float16`` halves the file; the tracker widens it."""
    from jaxtrack import checkpoints
    from jaxtrack.trackers import atom
    config = atom.ATOMConfig()
    head = atom.init_head(config, jax.random.PRNGKey(0))
    path = str(tmp_path / "head16.msgpack")
    checkpoints.save_variables(path, jax.tree_util.tree_map(lambda v: np.asarray(v, np.float16), head))
    loaded = checkpoints.load_variables(path, atom.init_head(config, jax.random.PRNGKey(1)))
    for a, b in zip(jax.tree_util.tree_leaves(head), jax.tree_util.tree_leaves(loaded)):
        assert b.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-3, atol=1e-4)
    bad = {"adapter": head["adapter"]}
    checkpoints.save_variables(path, bad)
    with pytest.raises(ValueError, match="missing keys"):
        checkpoints.load_variables(path, head)


# ------------------------------------------------------------------ pytracking geometry

def test_fourier_interpolation_is_a_zero_padded_spectrum():
    """``fourier_matrix`` is the series pytracking samples: the centred DFT (Nyquist term on
    both sides), zero-padded to 288, shifted back by 144."""
    rng = np.random.default_rng(0)
    s = rng.standard_normal((18, 18))
    a = np.fft.fft2(s) / 324
    k = np.fft.fftfreq(18, 1 / 18).astype(int)               # 0..8, -9..-1
    full = np.zeros((288, 288), complex)
    for i, ky in enumerate(k):
        for j, kx in enumerate(k):
            for sy in ((ky,) if abs(ky) < 9 else (9, -9)):
                for sx in ((kx,) if abs(kx) < 9 else (9, -9)):
                    full[sy % 288, sx % 288] += a[i, j] * np.exp(1j * np.pi * (sy + sx))
    ref = np.real(np.fft.ifft2(full)) * 288 * 288
    ref = np.roll(ref, (-144, -144), (0, 1))
    m = atom.fourier_matrix(18, 288).astype(np.float64)
    np.testing.assert_allclose(m @ s @ m.T, ref, atol=1e-5)
    # the Nyquist terms counted twice: not an interpolant, the map misses the scores by them
    assert np.abs((m @ s @ m.T)[::16, ::16] - s).max() > 1e-2


def test_sample_patch_cuts_at_the_truncated_position():
    """pytracking's window ``[int(tl), int(br))``, ``tl = trunc(p) - (s - 1) / 2``, ``br = trunc(p)
    + s / 2 + 1``, ``int`` toward 0: inside the image ``s + 1`` pixels resized to ``s``
    (bilinear, half-pixel centres), left of it ``s`` pixels with the edge replicated."""
    img = (np.arange(40 * 50 * 3, dtype=np.float32).reshape(40, 50, 3) * 7) % 251
    src = np.maximum((np.arange(16) + 0.5) * 17 / 16 - 0.5, 0)
    i0 = np.floor(src).astype(int)
    i1, lam = np.minimum(i0 + 1, 16), (src - i0)[:, None]
    for pos in ((20.0, 30.0), (20.7, 30.2)):
        out = np.asarray(atom.sample_patch(jnp.asarray(img), (40, 50), jnp.asarray(pos), 16.0, 16))
        win = img[int(pos[1]) - 8:int(pos[1]) + 9, int(pos[0]) - 8:int(pos[0]) + 9]
        rows = win[i0] * (1 - lam[..., None]) + win[i1] * lam[..., None]
        want = rows[:, i0] * (1 - lam[None]) + rows[:, i1] * lam[None]
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-3)
    out = np.asarray(atom.sample_patch(jnp.asarray(img), (40, 50), jnp.asarray((2.0, 3.0)), 16.0, 16))
    np.testing.assert_array_equal(out[0, 0], img[0, 0])
    np.testing.assert_array_equal(out[7, 7], img[3, 2])            # start (-5, -4)


def test_grid19_variant_keeps_the_former_geometry():
    import jaxtrack
    from jaxtrack.configs import variant_overrides
    assert variant_overrides("atom", "grid19") == {"geometry": "grid19"}
    assert atom.ATOMConfig().geometry == "pytracking"
    with pytest.raises(ValueError, match="geometry"):
        jaxtrack.make_tracker("atom", allow_random=True, geometry="nope", params={})
