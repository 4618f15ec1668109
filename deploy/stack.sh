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
want() { local s; for s in "${services[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

case "$action" in
  up)
    want redis && "$DEPLOY_DIR/services/redis.sh" start
    # Kafka and Elasticsearch are the slow ones: start them side by side.
    pids=()
    want kafka && { "$DEPLOY_DIR/services/kafka.sh" start & pids+=($!); }
    want elasticsearch && { "$DEPLOY_DIR/services/elasticsearch.sh" start & pids+=($!); }
    failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    [ $failed -eq 0 ] || die "a service failed to start (see above)" "fix it, then run 'dnsentinel stack up' again"
    want coredns && "$DEPLOY_DIR/services/coredns.sh" start
    ;;
  down)
    failed=0
    for ((i = ${#ALL[@]} - 1; i >= 0; i--)); do
      want "${ALL[$i]}" && { "$DEPLOY_DIR/services/${ALL[$i]}.sh" stop || failed=1; }
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
