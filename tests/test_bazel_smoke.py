"""Tiny smoke test for the Bazel setup (tests/BUILD, bazel_pytest_main.py): it imports
jaxtrack from the runfiles and checks the box conversions on numpy and jax inputs."""
import numpy as np

from jaxtrack import boxes


def test_xywh_cxcywh_round_trip():
    b = np.array([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 1.0, 1.0]])
    c = boxes.xywh_to_cxcywh(b)
    np.testing.assert_allclose(c[0], [25.0, 40.0, 30.0, 40.0])
    np.testing.assert_allclose(boxes.cxcywh_to_xywh(c), b)
    np.testing.assert_allclose(boxes.xyxy_to_xywh(boxes.xywh_to_xyxy(b)), b)


def test_iou_identical_and_disjoint():
    a = np.array([5.0, 5.0, 10.0, 20.0])
    assert abs(float(boxes.iou(a, a)) - 1.0) < 1e-9
    assert float(boxes.iou(a, np.array([100.0, 100.0, 5.0, 5.0]))) == 0.0


def test_jax_inputs():
    import jax.numpy as jnp

    b = jnp.array([10.0, 20.0, 30.0, 40.0])
    np.testing.assert_allclose(np.asarray(boxes.cxcywh_to_xywh(boxes.xywh_to_cxcywh(b))), np.asarray(b), rtol=1e-6)
    assert abs(float(boxes.iou(b, b)) - 1.0) < 1e-6
