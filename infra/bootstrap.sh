#!/usr/bin/env bash
# Set up a fresh machine for the marketplace: a virtual environment in .venv with the CPU build of
# torch, the project and its test extras, and (where the machine allows) Debian's real-text packages
# used by the provider corpora. Idempotent: a second run only checks.
#
#   bash infra/bootstrap.sh            # everything
#   MKT_SKIP_APT=1 bash infra/bootstrap.sh   # no apt-get (the corpora fall back to Python's own docs)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TEXT_PACKAGES="dict-foldoc dict-jargon dict-gcide wordnet-base fortunes fortunes-min"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# 1. Real English text from Debian (optional: FOLDOC, Jargon File, GCIDE, WordNet, fortunes).
if [ "${MKT_SKIP_APT:-0}" != "1" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  missing=""
  for p in $TEXT_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    log "installing Debian text packages:$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
      || log "could not install$missing; corpora will use the sources that are present"
  fi
fi

# 2. Virtual environment. torch first, pinned to the CPU build: a bare `torch` requirement would pull a
#    multi-GB CUDA build from PyPI.
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  log "installing torch 2.13.0 (CPU)"
  # On this kind of machine pip finds the CPU wheel on local disk; elsewhere point pip at a CPU index
  # (PIP_INDEX_URL / PIP_EXTRA_INDEX_URL) before running this script.
  $PIP install -q "torch==2.13.0"
fi
log "installing the project with its test extras"
$PIP install -q -e ".[test]"
log "ready: $VENV/bin/marketplace --help"
