"""Compile time against run time per tracker: ``jaxtrack bench`` (see its ``--help``).

    python experiments/bench_compile.py --trackers siamfc:mobilenet_v2 siamfc:alexnet \
        --root ../shared/data/otb --torch
"""
from jaxtrack import cli
from jaxtrack.commands import bench

if __name__ == "__main__":
    cli.run_command(bench)
