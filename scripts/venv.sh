# Sourced by run.sh and test.sh: make the project's own virtual environment (.venv) and put it first on
# PATH. Stock Debian and Ubuntu Pythons refuse system-wide installs (PEP 668), so nothing is installed
# outside .venv. Installs only when a requirements file changed since the last successful install.
# Usage: source scripts/venv.sh requirements.txt [more requirements files it includes]
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  # Missing, half-made, or made by a Python that is gone: start again.
  rm -rf "$VENV"
  echo "Creating the virtual environment $VENV with $("$PYTHON" --version 2>&1) ($(command -v "$PYTHON"))"
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    # Debian and Ubuntu split venv and ensurepip into python3-venv (python3.X-venv for a non-default X).
    version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    echo "The venv module is missing: installing python3-venv and python${version}-venv with apt"
    if ! { as_root apt-get update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${version}-venv" python3-venv; }; then
      echo "Could not install it. Run: sudo apt-get install python${version}-venv, then this script again." >&2
      exit 1
    fi
    "$PYTHON" -m venv "$VENV"
  fi
fi

# One stamp per requirements file, holding the hash it was installed at (run.sh after test.sh installs nothing).
stale=()
for file in "$@"; do
  [ "$(cat "$VENV/.installed-$file" 2>/dev/null)" = "$(sha256sum <"$file")" ] || stale+=("$file")
done
if [ "${#stale[@]}" -gt 0 ]; then
  echo "Installing Python packages into $VENV (${stale[*]} changed; a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${@/#/--requirement=}"
  for file in "$@"; do sha256sum <"$file" >"$VENV/.installed-$file"; done
else
  echo "Python packages in $VENV are up to date with $*"
fi

export VIRTUAL_ENV="$PWD/$VENV"
export PATH="$VIRTUAL_ENV/bin:$PATH"
