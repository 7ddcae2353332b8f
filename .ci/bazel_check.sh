#!/usr/bin/env bash
# Build and test jaxtrack with Bazel, offline (Debian's bazel-bootstrap 4.2.3).
#
#   .ci/bazel_check.sh                 # bazel build //... && bazel test //tests/...
#   .ci/bazel_check.sh //tests:test_x  # extra arguments replace the test patterns
#
# Installs bazel-bootstrap and bazel-rules-java with apt-get if they are missing
# (needs root or sudo). Python packages are NOT installed here: Bazel's py targets run
# on the python3 first on PATH, so install the project into it first, e.g.
# `pip install -e .[test]`. See docs/bazel.md.
set -euo pipefail

cd "$(dirname "$0")/.."

need=()
command -v bazel >/dev/null 2>&1 || need+=(bazel-bootstrap)
[ -f /usr/share/bazel/rules/java/WORKSPACE ] || need+=(bazel-rules-java)
if [ "${#need[@]}" -gt 0 ]; then
    echo "bazel_check: installing ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

echo "bazel_check: python3 = $(command -v python3) ($(python3 --version 2>&1))" >&2
python3 -c 'import pytest, numpy, jax' \
    || echo "bazel_check: warning: this python3 lacks pytest/numpy/jax; the tests will fail" >&2

if [ "$#" -eq 0 ]; then
    set -- //tests/...
fi

start=$(date +%s)
bazel build //...
bazel test "$@"
echo "bazel_check: OK in $(( $(date +%s) - start )) s" >&2
