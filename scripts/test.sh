#!/usr/bin/env bash
# Install, lint, build the docs and run the whole test suite (what CI runs, through .ci/run).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit 1
.venv/bin/ruff check src tests bench docs || exit 1
# The docs site, strict: every page in the navigation, every link resolving (a second). Into a throw-away
# folder, so a developer's site/ is left alone. Not --quiet: it hides the warnings --strict counts.
site_dir=$(mktemp -d)
.venv/bin/mkdocs build --strict --site-dir "$site_dir" || { rm -rf "$site_dir"; exit 1; }
rm -rf "$site_dir"
# Two pytest-xdist workers (CI has two cores; each worker keeps to one thread, see tests/conftest.py); the Ray
# tests share one worker (--dist loadgroup). CONVREC_TEST_WORKERS=0 runs them in this process, one by one.
workers="${CONVREC_TEST_WORKERS:-2}"
if [ "$workers" = "0" ]; then
    .venv/bin/python -m pytest "$@"
else
    .venv/bin/python -m pytest -n "$workers" --dist loadgroup "$@"
fi
status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure for convrec" >&2
    exit 1
fi
exit "$status"
