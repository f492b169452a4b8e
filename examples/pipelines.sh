#!/usr/bin/env bash
# Shell pipelines over contimg: every subcommand takes IDs as arguments or one per line
# on stdin, and prints one per line.  Empty input does nothing; --all means every
# pending item.  `contimg list` prints the IDs (no SQL against the internal schema).
# Variables: CONTIMG_HOME (state directory), INCOMING (where files arrive),
# NIGHT (YYYYMMDD to re-image), STAMP (remembers the last ingest by find).
set -euo pipefail
: "${CONTIMG_HOME:?set CONTIMG_HOME to the state directory}"
export CONTIMG_HOME
INCOMING="${INCOMING:-$CONTIMG_HOME/incoming}"
NIGHT="${NIGHT:-20250615}"
STAMP="${STAMP:-$CONTIMG_HOME/logs/last-ingest.stamp}"

# Ingest files listed by find (e.g. after an rsync); the first run takes every file.
mkdir -p "$(dirname "$STAMP")"
if [ -e "$STAMP" ]; then newer=(-newer "$STAMP"); else newer=(); fi
touch "$STAMP.next"
find "$INCOMING" -name '*_sb??.hdf5' "${newer[@]}" | contimg ingest --stdin
mv "$STAMP.next" "$STAMP"

# Convert the two oldest observations still waiting (IDs on stdin).
contimg list jobs --step convert --state pending | sed -n 1,2p | contimg convert

# Re-image a night: reset the image step of every imaged observation of NIGHT, then run
# them four at a time in two parallel processes.
contimg list jobs --step image --state done | { grep "^${NIGHT}T" || true; } | contimg redo image
contimg list jobs --step image --state pending | { grep "^${NIGHT}T" || true; } \
  | xargs -r -n 4 -P 2 contimg image

# Retry every failure of one step (nothing to retry: nothing happens, exit 0).
contimg list jobs --step calibrate --state failed --state dead | contimg retry --step calibrate

contimg status
