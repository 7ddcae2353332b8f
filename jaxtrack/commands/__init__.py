"""The ``jaxtrack`` subcommands, one module each: ``SUMMARY``, ``add_arguments(parser)`` and
``run(args)``. ``jaxtrack.cli.main`` dispatches to them; ``experiments/`` scripts wrap some."""
