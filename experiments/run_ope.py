"""One-pass evaluation of a tracker over a dataset: ``jaxtrack eval`` (see its ``--help``).

    python experiments/run_ope.py --tracker siamfc --backbone mobilenet_v2 --dataset otb \
        --root ../shared/data/otb --results RESULTS
"""
from jaxtrack import cli
from jaxtrack.commands import evaluate

if __name__ == "__main__":
    cli.run_command(evaluate)
