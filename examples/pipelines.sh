#!/usr/bin/env bash
# Shell pipelines over contimg (each subcommand reads IDs from stdin, prints one per line).
set -euo pipefail

# Re-image a night: every observation of 2025-06-15, two at a time.
contimg status --json >/dev/null   # (make sure the database exists)
sqlite3 "$CONTIMG_HOME/state.sqlite3" "SELECT id FROM observations WHERE id LIKE '20250615T%'" \
  | xargs -n 4 -P 2 contimg image

# Retry every failure of one step.
contimg status --failed --step calibrate --json | jq -r '.failures[].id' | xargs -r contimg retry

# Convert specific observations given on stdin.
printf '%s\n' 20250615T034258 20250615T034808 | contimg convert

# Ingest files listed by find (e.g. after an rsync), then show what is queued.
find /data/incoming -name '*_sb??.hdf5' -newer /tmp/last-ingest | contimg ingest --stdin
touch /tmp/last-ingest
contimg status
