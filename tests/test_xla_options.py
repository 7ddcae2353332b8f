"""Trackers' XLA compile options (``jaxtrack.xla_options``): taken on the CPU when this jaxlib
accepts them, dropped otherwise, and compiled in by ``JitTracker`` and the exported tracker."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxtrack
from jaxtrack import xla_options
from jaxtrack.core import Frame, Tracker
from jaxtrack.driver import JitTracker


def test_missing_or_rejected_options_leave_xla_defaults():
    assert xla_options.for_this_backend(None) is None
    assert xla_options.for_this_backend({"xla_cpu_experimental_ynn_fusion_type": "NO_SUCH_FUSION_TYPE"}) is None
    assert xla_options.for_this_backend({"xla_no_such_option": "true"}) is None


def test_trackers_that_opted_in_carry_the_options():
    opts = xla_options.for_this_backend(xla_options.EIGEN_CONVOLUTIONS)
    from jaxtrack.trackers import atom, gradnet, siamfc, tadt
    assert siamfc.COMPILER_OPTIONS == gradnet.COMPILER_OPTIONS == tadt.COMPILER_OPTIONS == xla_options.EIGEN_CONVOLUTIONS
    assert not hasattr(atom, "COMPILER_OPTIONS")       # its Gauss-Newton turns the rounding into other boxes
    assert jaxtrack.make_tracker("siamfc", backbone="alexnet", allow_random=True).compiler_options == opts


def _conv_tracker(options):
    w = jnp.asarray(np.random.default_rng(0).standard_normal((3, 3, 32, 32)), jnp.float32)

    def conv(image):
        return jax.lax.conv_general_dilated(image[None], w, (1, 1), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    return Tracker("conv", None, {}, lambda p, f, b, k: conv(f.image), lambda p, s, f: (conv(f.image), None),
                   options)


def test_jit_tracker_compiles_with_the_options():
    opts = xla_options.for_this_backend(xla_options.EIGEN_CONVOLUTIONS)
    if opts is None:
        pytest.skip("this backend or jaxlib does not take the option")
    image = jnp.asarray(np.random.default_rng(1).standard_normal((16, 16, 32)), jnp.float32)
    frame = Frame.of(image)
    texts, outs = {}, {}
    for label, o in (("default", None), ("eigen", opts)):
        jt = JitTracker(_conv_tracker(o))
        state = jt.init({}, frame, None, None)
        texts[label] = jt._step.lower({}, state, frame).compile().as_text()
        outs[label] = np.asarray(jt.step({}, state, frame)[0])
    if "ynn" not in texts["default"]:
        pytest.skip("this jaxlib does not run the convolution through YNNPACK by default")
    assert "ynn" not in texts["eigen"]            # the convolution left YNNPACK
    np.testing.assert_allclose(outs["eigen"], outs["default"], rtol=1e-4, atol=1e-4)
