# Sourced by the bench scripts that start servers in the background: `scratch DIR_TEMPLATE`
# makes the scratch directory $OUT and, at exit, stops every background job and removes it.
# The exit trap ignores the failures of kill (no job left) and wait (a job ended by the
# kill): under `set -e` either would end the trap before the rm, leaving $OUT behind.
scratch() {
  OUT=$(mktemp -d "$1")
  trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$OUT"' EXIT
}
