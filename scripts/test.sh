#!/usr/bin/env bash
# Install, lint and run the whole test suite (what CI runs, through .ci/run).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit 1
.venv/bin/ruff check src tests bench || exit 1
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure for convrec" >&2
    exit 1
fi
exit "$status"
