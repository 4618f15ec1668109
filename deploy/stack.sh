#!/usr/bin/env bash
# Drives the local stack's services in order. `dnsentinel stack ...` calls this
# with DS_* variables derived from the settings (and then creates the Kafka topics).
# Usage: stack.sh up|down|status|fetch [SERVICE...]    stack.sh logs SERVICE [-n N] [-f]
set -euo pipefail
SERVICE=stack
source "$(dirname "$0")/lib.sh"
ALL=(redis kafka elasticsearch coredns)

action="${1:-}"; shift || true
case "$action" in
  logs)
    [ $# -ge 1 ] || die "logs needs a service: ${ALL[*]}"
    exec "$DEPLOY_DIR/services/$1.sh" logs "${@:2}" ;;
esac
services=("$@"); [ ${#services[@]} -gt 0 ] || services=("${ALL[@]}")
for s in "${services[@]}"; do
  [ -x "$DEPLOY_DIR/services/$s.sh" ] || die "unknown service '$s'" "pick one of: ${ALL[*]}"
done
# One up/down at a time per state dir (teammates' test sessions start it concurrently).
if [ "$action" = up ] || [ "$action" = down ]; then
  mkdir -p "$DS_STATE_DIR"
  exec 9> "$DS_STATE_DIR/.stack.lock"
  flock -n 9 || { say "waiting for another 'stack up/down' on $DS_STATE_DIR to finish..."; flock -w 600 9; } || die "another 'stack $action' holds $DS_STATE_DIR/.stack.lock" "wait for it to finish"
fi
# Services must not inherit the lock: a daemon holding fd 9 would hold it forever.
svc() { "$DEPLOY_DIR/services/$1.sh" "${@:2}" 9>&-; }
want() { local s; for s in "${services[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

case "$action" in
  up)
    # Go modules download (network-bound) while the JVMs start; the CPU-bound build comes last.
    gofetch=""
    if want coredns; then svc coredns fetch > "$DS_STATE_DIR/.coredns-fetch.out" 2>&1 & gofetch=$!; fi
    if want redis; then svc redis start; fi
    # Kafka and Elasticsearch are the slow ones: start them side by side.
    pids=()
    if want kafka; then svc kafka start & pids+=($!); fi
    if want elasticsearch; then svc elasticsearch start & pids+=($!); fi
    failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    [ $failed -eq 0 ] || die "a service failed to start (see above)" "fix it, then run 'dnsentinel stack up' again"
    if [ -n "$gofetch" ]; then wait "$gofetch" || true; cat "$DS_STATE_DIR/.coredns-fetch.out"; fi
    if want coredns; then svc coredns start; fi
    ;;
  down)
    failed=0
    for ((i = ${#ALL[@]} - 1; i >= 0; i--)); do
      if want "${ALL[$i]}"; then svc "${ALL[$i]}" stop || failed=1; fi
    done
    exit $failed ;;
  status)
    rc=0
    for s in "${services[@]}"; do
      line="$("$DEPLOY_DIR/services/$s.sh" status)" || rc=1
      printf '%-14s %s\n' "$s" "$line"
    done
    exit $rc ;;
  fetch)
    for s in "${services[@]}"; do "$DEPLOY_DIR/services/$s.sh" fetch; done ;;
  *) echo "usage: $0 up|down|status|fetch [SERVICE...] | logs SERVICE [-n N] [-f]" >&2; exit 2 ;;
esac
