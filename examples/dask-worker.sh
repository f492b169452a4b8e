#!/usr/bin/env bash
# Start contimg's Dask workers on one host of a cluster: one CASA job per worker process
# (--nthreads 1).  The head runs `dask scheduler` and `contimg watch --executor dask
# --scheduler tcp://HEAD:8786`; every host mounts the state directory at the same path.
# Dask workers exit when they lose the scheduler (a restart): they are started again here,
# and `watch` submits its unfinished work to them once the scheduler is back.
# Usage: bash examples/dask-worker.sh tcp://head:8786 [processes]     (Ctrl-C or SIGTERM stops)
set -uo pipefail
scheduler="${1:?give the scheduler address, e.g. tcp://head:8786}"
procs="${2:-$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))}"
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' INT TERM
while true; do
  dask worker "$scheduler" --nworkers "$procs" --nthreads 1 --memory-limit 6GB \
      --name "$(hostname)-$$" &
  child=$!
  wait "$child"
  echo "dask-worker.sh: workers ended (scheduler gone?); starting again in 5 s" >&2
  sleep 5
done
