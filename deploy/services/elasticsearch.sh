#!/usr/bin/env bash
# Elasticsearch, one node, from the Maven Central integ-test-zip distribution.
# Usage: elasticsearch.sh start|stop|status|logs [-n N] [-f]|fetch|version
#
# ES refuses to run as root: as root the node runs as the system user ES_USER,
# in a runtime directory that user can reach (the state dir when it can, else
# /var/lib/dnsentinel/es-<hash of the state dir>, linked from the state dir).
set -euo pipefail
SERVICE=elasticsearch
source "$(dirname "$0")/../lib.sh"

HOST="${DS_ES_HOST:-127.0.0.1}"
PORT="${DS_ES_PORT:-9200}"
TRANSPORT_PORT="${DS_ES_TRANSPORT_PORT:-9300}"
HEAP="${DS_ES_HEAP:-1g}"
LINK="$DS_STATE_DIR/elasticsearch"
# ES_USER, as_es, es_ensure_user, es_runtime_dir, es_fetch, es_unpack, es_java: deploy/lib.sh
# (shared with the cluster profile's deploy/cluster/elasticsearch.sh).

# setup_dirs [create]: the paths; only `start` (create) makes the user and directories.
setup_dirs() {
  es_dirs "$LINK" "${1:-}"
  DATA_DIR="$RT/data"
  LOG_DIR="$RT/logs"
  PIDFILE="$RT/es.pid"
  LOG="$LOG_DIR/dnsentinel-local.log"
  LAUNCH_LOG="$LOG_DIR/launcher.log"
}

serves() { health; }
health() {
  curl -fsS --max-time 3 "http://$HOST:$PORT/_cluster/health" 2>/dev/null | grep -qE '"status":"(green|yellow)"'
}

start() {
  setup_dirs create
  if pid_alive "$PIDFILE" && health; then say "already running on http://$HOST:$PORT"; return 0; fi
  if pid_alive "$PIDFILE"; then
    warn "a previous node (pid $(cat "$PIDFILE")) is running but not healthy; restarting it"
    stop_pidfile "$PIDFILE" 60
  fi
  if adopted "$PIDFILE"; then say "http://$HOST:$PORT is already served by $(port_owner "$PORT"), not from this state dir; using it"; return 0; fi
  check_port_free "$PORT" "Elasticsearch HTTP, DNSENTINEL_ELASTICSEARCH__URL"
  check_port_free "$TRANSPORT_PORT" "Elasticsearch transport, DNSENTINEL_STACK__ES_TRANSPORT_PORT"
  local java; java="$(es_java)"
  es_unpack "$RT"
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  render "$DEPLOY_DIR/elasticsearch/elasticsearch.yml.tmpl" > "$ES_HOME/config/elasticsearch.yml"
  printf -- '-Xms%s\n-Xmx%s\n' "$HEAP" "$HEAP" > "$ES_HOME/config/jvm.options.d/heap.options"
  [ "$(id -u)" -eq 0 ] && chown -R "$ES_USER:" "$RT"
  rm -f "$PIDFILE"
  # -d: the launcher daemonizes the node and exits once it is started (or failed).
  as_es env ES_JAVA_HOME="$(dirname "$(dirname "$java")")" ES_PATH_CONF="$ES_HOME/config" \
    "$ES_HOME/bin/elasticsearch" -d -p "$PIDFILE" > "$LAUNCH_LOG" 2>&1 < /dev/null &
  local launcher=$! deadline=$((SECONDS + ${DS_START_TIMEOUT%.*}))
  until health; do
    if ! kill -0 "$launcher" 2>/dev/null && ! pid_alive "$PIDFILE"; then
      wait "$launcher" || true
      [ -s "$LAUNCH_LOG" ] && tail -n 20 "$LAUNCH_LOG" >&2
      fail_with_log "$LOG" "the node exited during start-up" "see $LOG and $LAUNCH_LOG"
    fi
    [ $SECONDS -lt $deadline ] || { kill "$launcher" 2>/dev/null || true; stop_pidfile "$PIDFILE" 30; kill_strays
      fail_with_log "$LOG" "not healthy on http://$HOST:$PORT within ${DS_START_TIMEOUT}s" \
      "see $LOG; raise DNSENTINEL_STACK__START_TIMEOUT_S on a loaded machine"; }
    sleep 1
  done
  wait "$launcher" 2>/dev/null || true
  say "healthy on http://$HOST:$PORT"
}

# kill_strays: the node of THIS home when no pid file names it (a start that failed
# before the node wrote its pid file).
kill_strays() {
  local pid
  for pid in $(pgrep -f -- "-Des.path.home=$ES_HOME " || true); do
    warn "stopping node pid $pid of $ES_HOME (no pid file)"
    echo "$pid" > "$PIDFILE.stray"
    stop_pidfile "$PIDFILE.stray" 30
  done
}

stop() {
  setup_dirs
  if adopted "$PIDFILE"; then say "left running: $(port_owner "$PORT") was not started from this state dir"; return 0; fi
  stop_pidfile "$PIDFILE" 60
  kill_strays
  wait_port_closed "$PORT" 10 || die "port $PORT still listened on by $(port_owner "$PORT")"
  wait_port_closed "$TRANSPORT_PORT" 10 || die "port $TRANSPORT_PORT still listened on by $(port_owner "$TRANSPORT_PORT")"
  say "stopped"
}

status() {
  setup_dirs >/dev/null 2>&1 || true
  if adopted "${PIDFILE:-/nonexistent}"; then echo "healthy external $(port_owner "$PORT")"; return 0; fi
  if ! pid_alive "${PIDFILE:-/nonexistent}"; then echo "stopped"; return 3; fi
  if health; then echo "healthy pid $(cat "$PIDFILE")"; return 0; fi
  echo "unhealthy pid $(cat "$PIDFILE"), no green/yellow health on http://$HOST:$PORT"; return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) shift; setup_dirs; show_logs "$LOG" "$@" ;;
  fetch) es_fetch ;;
  version) echo "$ELASTICSEARCH_VERSION" ;;
  *) echo "usage: $0 start|stop|status|logs [-n N] [-f]|fetch|version" >&2; exit 2 ;;
esac
