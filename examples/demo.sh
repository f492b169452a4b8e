#!/usr/bin/env bash
# The contimg demo: one hour of simulated DSA-110 data (12 observations, a 3C286 transit)
# through the whole pipeline with `contimg watch --once`, ending in a published mosaic.
# Sized (antennas, channels) so the run fits in about 15 minutes on a 2-core machine.
set -euo pipefail
DEMO_HOME="${CONTIMG_DEMO_HOME:-$PWD/contimg-demo}"
NANTS="${CONTIMG_DEMO_NANTS:-24}"
NCHAN="${CONTIMG_DEMO_NCHAN:-2}"
# contimg refuses CONTIMG_* variables it does not know (a typo must not pass silently):
# these three are the demo's own, so they are not passed on.
unset CONTIMG_DEMO_HOME CONTIMG_DEMO_NANTS CONTIMG_DEMO_NCHAN
export CONTIMG_HOME="$DEMO_HOME"
start=$(date +%s)
echo "== contimg demo in $DEMO_HOME (${NANTS} antennas, 16 x ${NCHAN} channels)"
if [ -e "$DEMO_HOME/state.sqlite3" ]; then
  echo "   (reusing the existing demo state; remove $DEMO_HOME to start afresh)"
else
  echo "== simulating 12 observations (309 s each) into $DEMO_HOME/incoming"
  contimg simulate --observations 12 --nants "$NANTS" --nchan "$NCHAN" --seed 42 > /dev/null
  # the simulator's files are complete: let ingest treat them as settled at once
  touch -d '1 minute ago' "$DEMO_HOME"/incoming/*.hdf5
fi
echo "== contimg watch --once (ingest -> convert -> calibrate -> image -> mosaic -> publish)"
contimg watch --once --workers 2 | cat
echo "== status"
contimg status | cat
echo "== products"
contimg publish --list | cat
end=$(date +%s)
echo "== demo finished in $((end - start)) s; state directory: $DEMO_HOME"
