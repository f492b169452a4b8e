#!/usr/bin/env bash
# A tmux session for the pipeline: the watcher in one window, status in another.
set -euo pipefail
export CONTIMG_HOME="${CONTIMG_HOME:-/data/dsa110/contimg}"
tmux new-session -d -s contimg -n watch "contimg watch --workers 2"
tmux new-window -t contimg -n status "watch -n 30 contimg status"
tmux new-window -t contimg -n log "tail -F $CONTIMG_HOME/logs/watch.log"
tmux attach -t contimg
