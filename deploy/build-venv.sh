#!/bin/sh
# Build policyengine's wheel from a source tree and install it into a fresh virtualenv: the one
# recipe behind deploy/Dockerfile (its build stage) and tests/install (which runs it in CI), so what CI
# tests is what the image holds. No editable install, no source tree beside the result.
#   usage: sh deploy/build-venv.sh SOURCE_DIR VENV_DIR        (PYTHON picks the interpreter; python3)
set -eu
if [ "$#" -ne 2 ]; then
  echo "usage: $0 SOURCE_DIR VENV_DIR" >&2
  exit 2
fi
source_dir=$(cd "$1" && pwd)  # absolute: pip reads a bare relative name as a requirement
venv=$2
python=${PYTHON:-python3}
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$source_dir"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "$wheels"/policyengine-*.whl
"$venv/bin/policyengine" --help >/dev/null
