# shellcheck shell=bash
# Shared by scripts/bench.sh and scripts/scale.sh (sourced, not run).

# plot_venv ROOT: makes sure .tools/bench/venv holds the plotting packages
# pinned in scripts/bench/requirements.txt (matplotlib) and prints its python.
plot_venv() {
  local tools="$1/.tools/bench" req="$1/scripts/bench/requirements.txt"
  local stamp="$tools/venv.stamp"
  if [ ! -x "$tools/venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum <"$req")" ]; then
    printf '[bench] %s\n' "python venv for the plots (matplotlib)" >&2
    mkdir -p "$tools"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
    sha256sum <"$req" >"$stamp"
  fi
  printf '%s\n' "$tools/venv/bin/python"
}
