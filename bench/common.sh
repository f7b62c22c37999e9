# Sourced by the side-by-side scripts: `bench_init "$@"` moves to the
# repository root, prints the calling script's header as usage when it got
# no arguments, and sets CONVOY (the binary) and PYTHON (the interpreter
# with Debian's torch), checking the binary is built.
bench_init() {
  local script=$0
  cd "$(dirname "$script")/.."
  if [ $# -lt 1 ]; then
    sed -n '2,/^set /p' "$script" | grep '^#' | sed 's/^# \{0,1\}//'
    exit 2
  fi
  CONVOY=${CONVOY_BIN:-build/convoy}
  PYTHON=/usr/bin/python3
  [ -x "$CONVOY" ] || { echo "$(basename "$script"): $CONVOY not built (run scripts/setup.sh)" >&2; exit 1; }
}
