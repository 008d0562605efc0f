#!/usr/bin/env bash
# test_serve.sh - integration test of kiln serve (see serve_test.py).
set -u
cd "$(dirname "$0")/../.."
exec timeout 600 /usr/bin/python3 tests/integration/serve_test.py build/kiln
