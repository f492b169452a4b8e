#!/usr/bin/env bash
# contimg on a Dask LocalCluster on this host: the demo's data, each step's work on one of
# two Dask worker processes (the head, `watch`, alone writes the state database).
# Usage: CONTIMG_HOME=/data/contimg bash examples/dask-one-host.sh
set -euo pipefail
: "${CONTIMG_HOME:?set CONTIMG_HOME to a state directory (contimg init creates one)}"
export CONTIMG_HOME
[ -e "$CONTIMG_HOME/state.sqlite3" ] || contimg init
contimg watch --once --executor dask --workers 2 | cat
contimg status | cat
