#!/usr/bin/env bash
# alexnet-lab set-up and entry points. From a fresh clone:
#   bash course.sh lab    install what is missing, then open the course in JupyterLab
#   bash course.sh test   install what is missing, then run every test (package + notebooks)
# Everything goes into .venv/ inside this folder; delete it to start over.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

install() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating the virtual environment $VENV (Python: $($PYTHON --version 2>&1))"
        "$PYTHON" -m venv "$VENV" || {
            echo "Could not create a virtual environment. On Debian/Ubuntu: sudo apt-get install python3-venv" >&2
            exit 1
        }
    fi
    # Re-install only when pyproject.toml changed since the last install.
    local stamp="$VENV/.alexnet-lab-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "==> installing alexnet-lab and its dependencies into $VENV (a few minutes the first time)"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet --progress-bar off -e .
        touch "$stamp"
    fi
}

export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}

case "${1:-}" in
    lab)
        install
        shift
        extra=()
        if [ "$(id -u)" = 0 ]; then  # Jupyter refuses to start as root unless told (containers, cloud machines)
            echo "==> running as root: starting JupyterLab with --allow-root"
            extra+=(--allow-root)
        fi
        exec "$VENV/bin/jupyter" lab notebooks/ ${extra[@]+"${extra[@]}"} "$@"
        ;;
    test)
        install
        shift
        # Tests and notebooks run in the seconds-scale 'smoke' profile unless told otherwise.
        export ALEXNET_LAB_PROFILE=${ALEXNET_LAB_PROFILE:-smoke}
        echo "==> linting the package, tests and notebooks"
        "$VENV/bin/ruff" check alexnet_lab tests benchmarks scripts
        "$VENV/bin/nbqa" ruff notebooks/ assignments/
        echo "==> checking the package's layers (import-linter contracts in pyproject.toml)"
        "$VENV/bin/lint-imports"
        echo "==> running the package tests and every notebook (profile: $ALEXNET_LAB_PROFILE)"
        exec "$VENV/bin/python" -m pytest tests/ --nbval-lax --nbval-current-env notebooks/ "$@"
        ;;
    *)
        echo "usage: bash course.sh lab | test [pytest arguments]" >&2
        exit 2
        ;;
esac
