"""Offline training of the trackers that learn offline: what the ``experiments/train_*.py``
scripts run, importable and tested on its own (``common``: shared pieces; ``siamfc``,
``gradnet``, ``iounet``: one module per recipe)."""
