#!/usr/bin/env bash
# A tmux session for the pipeline: the watcher in one window, status in another.
# Every command names the state directory itself (--home): a tmux server that is already
# running does not pass this shell's exported variables on to new windows.
# Usage: tmux-session.sh [STATE_DIR]   (default $CONTIMG_HOME or /data/dsa110/contimg)
set -euo pipefail
HOME_DIR="${1:-${CONTIMG_HOME:-/data/dsa110/contimg}}"
CONTIMG="${CONTIMG:-$(command -v contimg)}"   # absolute: the server's PATH may differ
SESSION="${SESSION:-contimg}"
"$CONTIMG" --home "$HOME_DIR" init >/dev/null  # safe to repeat; watch needs the state
tmux new-session -d -s "$SESSION" -n watch "'$CONTIMG' --home '$HOME_DIR' watch --workers 2"
tmux new-window -t "$SESSION" -n status "watch -n 30 '$CONTIMG' --home '$HOME_DIR' status"
tmux new-window -t "$SESSION" -n log "tail -F '$HOME_DIR/logs/watch.log'"
if [ -t 0 ] && [ -t 1 ]; then
  tmux attach -t "$SESSION"
else
  echo "tmux session '$SESSION' started; attach with: tmux attach -t $SESSION"
fi
