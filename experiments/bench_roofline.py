"""Each tracker against this machine's measured rates, with a profile, and AUC against FPS
beside the OpenCV peers: ``jaxtrack roofline`` (see its ``--help``).

    python experiments/bench_roofline.py --root ../shared/data/otb \
        --nanotrack ../shared/peers/nanotrack_v2 --out roofline.json --plot roofline.png
"""
from jaxtrack import cli
from jaxtrack.commands import roofline

if __name__ == "__main__":
    cli.run_command(roofline)
