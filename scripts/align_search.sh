#!/usr/bin/env bash
# The alignment settings tried beyond configs/align.toml, chosen between on the WHOLE validation split only
# (paired differences from the SFT retriever; the test split is never looked at here). Each run starts from
# the SFT checkpoint with configs/align.toml plus one change, so it draws the same training contexts as the
# alignment runs of docs/results/alignment.md and most of its LLM replies come from the response cache.
#
#   bash scripts/align_search.sh redial            # all settings, then the validation comparison
#                                                  # (ReDial, 2 cores: ~50 min with those runs' cache)
#   bash scripts/align_search.sh redial rl-dpo     # one setting (names below)
#
# Settings (run dir results/runs/lrurec-text-DATASET-NAME):
#   rl-dpo, rl-grpo    nll_weight = 0: the RL term alone (the supervised steps alone lose test NDCG)
#   w04-dpo, w04-grpo  reward_weight = 0.4: sets ranked by 0.4 * LLM + 0.6 * retriever order, the kind of
#                      fusion rar chooses on validation, since the LLM alone ranks the target worse
#   slow-dpo, slow-nll lr = 3e-5, one pass a round: a smaller move from the SFT checkpoint, with its own
#                      no-LLM control (slow-grpo exists too; not in the default list, it was not run)
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:?usage: align_search.sh DATASET [SETTING...]}
shift
settings=("$@")
if [ ${#settings[@]} -eq 0 ]; then
  settings=(rl-dpo rl-grpo w04-dpo w04-grpo slow-dpo slow-nll)
fi
convrec=${CONVREC:-.venv/bin/convrec}
python=${PYTHON:-.venv/bin/python}
sft=results/runs/lrurec-text-$dataset
mkdir -p logs

for name in "${settings[@]}"; do
  method=${name##*-}
  case $name in
    rl-*) extra=(--set nll_weight=0) ;;
    w04-*) extra=(--set reward_weight=0.4) ;;
    slow-*) extra=(--set lr=3e-5 --set updates_per_round=1) ;;
    *) echo "unknown setting $name (see the header of $0)" >&2; exit 2 ;;
  esac
  echo "== $name: --method $method ${extra[*]}"
  "$convrec" align --dataset "$dataset" --checkpoint "$sft" --config configs/align.toml --method "$method" \
      "${extra[@]}" --out "$sft-$name" 2>&1 | tee "logs/align-$dataset-$name.log" | grep -aE "round [0-9]+:|^done|^LLM" || true
done

runs=()
for run in "$sft"-{dpo,grpo,nll} "$sft"-{rl,w04,slow}-*; do
  [ -f "$run/history.json" ] && runs+=("$run")
done
"$python" scripts/paired_difference.py --split valid --dataset "$dataset" --baseline "$sft" "${runs[@]}"
