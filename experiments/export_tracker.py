"""Export a tracker's init and track_step: ``jaxtrack export`` (see its ``--help``).

    python experiments/export_tracker.py --tracker siamfc --backbone mobilenet_v2 \
        --buckets 256x384 384x512 --out siamfc_mnv2.jaxexport
"""
from jaxtrack import cli
from jaxtrack.commands import export

if __name__ == "__main__":
    cli.run_command(export)
