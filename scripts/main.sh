#!/usr/bin/env bash
# The main job on the embedded defaults: install, then reproduce the README's results table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/convrec results "$@"
