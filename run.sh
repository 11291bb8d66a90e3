#!/usr/bin/env bash
# MDTexture set-up and entry point for a fresh machine.
#   ./run.sh demo   creates .venv (first time), makes a synthetic phantom scan, classifies it, writes demo_output/
#                   (an earlier demo_output/ written by MDTexture is replaced; any other folder there is refused)
#   ./run.sh test   creates .venv with the test extras (first time) and runs the whole test suite
# Anything after the verb is passed on (e.g. ./run.sh demo --phantom-class CMD, ./run.sh test -k scores).
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY=${PYTHON:-python3}

install() {  # install() EXTRA: (re)install when the venv or the stamp for that extra is missing or stale
    local extra=$1 stamp="$VENV/.installed-$1"
    if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then return; fi
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    # These versions are the ones this project is tested with (a CPU-capable build). torchvision is not needed to
    # classify (MDTexture defines its own ResNet18); the test extra's Grad-CAM peers and reference tests use it.
    if [ "$extra" = base ]; then
        "$VENV/bin/python" -m pip install --quiet "torch==2.14.1"
        "$VENV/bin/python" -m pip install --quiet -e .
    else
        "$VENV/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
        "$VENV/bin/python" -m pip install --quiet -e ".[$extra]"
    fi
    touch "$stamp"
}

verb=${1:-}
[ $# -gt 0 ] && shift
case "$verb" in
    demo) install base; exec "$VENV/bin/mdtexture" demo --overwrite "$@" ;;  # rerunnable: replaces only its own earlier output
    test) install test; exec "$VENV/bin/python" -m pytest Testing "$@" ;;
    *) echo "usage: ./run.sh demo|test [arguments]" >&2; exit 2 ;;
esac
