#!/bin/sh
# The unit tests of omen-bench (test_units.c), in a scratch directory.
dir=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/omen-bench-units.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
"$dir/test_units" "$scratch"
