#!/bin/sh
# Stand-in for Bazel's coverage tools, which are not available offline.
echo "remote_coverage_tools stub: 'bazel coverage' is not supported in this offline setup; use pytest --cov" >&2
exit 1
