"""Bazel entry point for one test file: ``py_test(main = "bazel_pytest_main.py")``.

Runs ``pytest <file> -q -m "not slow and not benchmark"`` and exits with pytest's
code. The file comes as the first argument (``$(location test_x.py)`` in tests/BUILD,
a path relative to the runfiles root, which is the working directory). Extra
arguments after it are passed to pytest, e.g.
``bazel test //tests:test_boxes --test_arg=-k --test_arg=iou``.

Paths: the runfiles tree holds symlinks to the real source files, so a test that
computes ``Path(__file__).resolve().parents[1]`` gets the real repository root (and
its sibling ``../shared``). The runner also exports ``JAXTRACK_REPO_ROOT`` (the real
repository root, found the same way) unless it is already set.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: bazel_pytest_main.py TEST_FILE [pytest args...]", file=sys.stderr)
        return 2
    test_file = Path(argv[0]).absolute()
    if not test_file.exists():
        print(f"bazel_pytest_main: no such test file: {test_file}", file=sys.stderr)
        return 2
    repo_root = Path(os.path.realpath(test_file)).parents[1]
    os.environ.setdefault("JAXTRACK_REPO_ROOT", str(repo_root))
    # Bazel gives each test a private writable TEST_TMPDIR; keep pytest's cache
    # (and anything else wanting a temp dir) there instead of the read-only runfiles.
    tmp = os.environ.get("TEST_TMPDIR")
    if tmp:
        os.environ.setdefault("TMPDIR", tmp)
    # Bazel's test.xml is written by Bazel itself; pytest's own report, if wanted,
    # goes to the undeclared outputs dir.
    import pytest

    args = [
        str(test_file),
        "-q",
        "-m",
        "not slow and not benchmark",
        "-p",
        "no:cacheprovider",
        *argv[1:],
    ]
    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if outputs:
        args += ["--junitxml", os.path.join(outputs, "pytest.xml")]
    code = int(pytest.main(args))
    # A file whose tests are all deselected (e.g. only slow tests) is a pass here.
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        code = 0
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
