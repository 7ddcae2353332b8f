"""Untrained SiamFC heads on the frozen ImageNet MobileNetV2, written as head checkpoints
that the siamfc tracker loads with ``--weights`` (issue 23: what does training the 1x1
adjust layer buy over not training it?).

Each head is the tracker's 1x1 ``adjust`` (96 -> 128) and score bias, set without a loss:

* ``identity``: features.13 as they are (the first 96 output channels copy the input, the
  other 32 are zero; correlation is then the plain dot product of the backbone's features);
* ``random``: a fixed Gaussian projection (sd 1/sqrt(96), ``--seed``), which keeps dot
  products up to noise (Johnson-Lindenstrauss);
* ``centered``: identity after subtracting the features' mean;
* ``pca64``: centred, projected on the top 64 principal components;
* ``whitened``: centred and whitened on all 96 components (each scaled by 1/sqrt(eigenvalue)).

Mean and principal components come from the backbone features of a seeded pool of
exemplar and search crops drawn from honest training data (the training split of the
package photographs plus synthetic sequences; ``docs/validation.md``), the same pairs
``train_siamfc.py`` trains on; no benchmark sequence is read. Usage::

    python experiments/make_siamfc_heads.py --out runs/heads --pairs 256
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from jaxtrack import checkpoints, cli
from jaxtrack.data import sources as sources_lib
from jaxtrack.train import common
from jaxtrack.train.siamfc import HEADS, feature_statistics, pool_cells, untrained_head


def pooled_vectors(pairs: int, seed: int, images_dir: str, synthetic: int) -> np.ndarray:
    """Backbone features (every cell of exemplar and search maps) of ``pairs`` honest pairs."""
    from jaxtrack.train import siamfc as train_siamfc
    from jaxtrack.trackers.siamfc import SiamFCConfig
    config = SiamFCConfig(backbone="mobilenet_v2")
    params = train_siamfc.init_params(config, seed)
    sources = sources_lib.pair_sources(images_dir, synthetic, seed, split="train")
    pool = train_siamfc.draw_pool(config, params, sources, pairs, seed)
    return pool_cells(pool)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for <head>.msgpack (+ .json provenance)")
    ap.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    ap.add_argument("--pairs", type=int, default=256, help="honest pairs whose features fit mean and PCA")
    ap.add_argument("--images", default=sources_lib.DEFAULT_IMAGES)
    ap.add_argument("--synthetic", type=int, default=32, help="synthetic sequences among the sources")
    ap.add_argument("--seed", type=int, default=0, help="pool draws and the random projection")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    stats = {}
    if set(args.heads) - {"identity", "random"}:
        vectors = pooled_vectors(args.pairs, args.seed, args.images, args.synthetic)
        mean, values, components = feature_statistics(vectors)
        stats = dict(mean=mean, values=values, components=components)
        print(f"{len(vectors)} feature vectors; top eigenvalues {np.round(values[:5], 2).tolist()}; "
              f"64 components keep {values[:64].sum() / values.sum():.3f} of the variance")
    for name in args.heads:
        path = os.path.join(args.out, f"{name}.msgpack")
        checkpoints.save_variables(path, untrained_head(name, seed=args.seed, **stats))
        common.write_provenance(path, {"what": f"untrained SiamFC head '{name}' (experiments/make_siamfc_heads.py)",
                                       "pairs": args.pairs, "seed": args.seed, "images": args.images,
                                       "image_split": "train", "synthetic_sequences": args.synthetic})
        print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main)
