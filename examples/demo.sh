#!/usr/bin/env bash
# The contimg demo: simulated DSA-110 data through the pipeline steps that exist so far.
set -euo pipefail
HOME_DIR="${CONTIMG_DEMO_HOME:-$PWD/contimg-demo}"
echo "demo state directory: $HOME_DIR"
contimg --home "$HOME_DIR" config
contimg --home "$HOME_DIR" status
