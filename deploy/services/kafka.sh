#!/usr/bin/env bash
# Apache Kafka, one broker in KRaft combined mode, run from Maven Central jars.
# Usage: kafka.sh start|stop|status|logs [-n N] [-f]|fetch|version
set -euo pipefail
SERVICE=kafka
source "$(dirname "$0")/../lib.sh"

HOST="${DS_KAFKA_HOST:-127.0.0.1}"
PORT="${DS_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${DS_KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${DS_KAFKA_HEAP:-512m}"
DIR="$DS_STATE_DIR/kafka"
LIBS="$KAFKA_LIBS"
DATA_DIR="$DIR/data"
PIDFILE="$DIR/kafka.pid"
LOG="$DIR/logs/kafka.log"
CONF="$DIR/server.properties"

fetch() {
  [ -f "$LIBS/.complete" ] && return 0
  say "fetching Kafka $KAFKA_VERSION jars from Maven Central (once, ~55 MB)..."
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  (cd "$DEPLOY_DIR/kafka" && mvn_quiet dependency:copy-dependencies -DincludeScope=runtime \
    -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" -DoutputDirectory="$LIBS") \
    || die "could not fetch the Kafka jars" "check that Maven Central is reachable (mvn -v; ~/.m2/settings.xml mirrors)"
  [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka_2.13-$KAFKA_VERSION.jar missing after fetch" "rm -rf $LIBS and retry"
  touch "$LIBS/.complete"
  say "fetched $(ls "$LIBS" | wc -l) jars"
}

serves() { port_open "$HOST" "$PORT" && port_owner "$PORT" | grep -q '^java'; }
broker_up() { port_open "$HOST" "$PORT" && grep -q "Kafka Server started" "$LOG" 2>/dev/null; }

start() {
  if pid_alive "$PIDFILE" && broker_up; then say "already running on $HOST:$PORT"; return 0; fi
  if pid_alive "$PIDFILE"; then
    warn "a previous broker (pid $(cat "$PIDFILE")) is running but not healthy; restarting it"
    stop_pidfile "$PIDFILE" 30
  fi
  if adopted "$PIDFILE"; then say "$HOST:$PORT is already served by $(port_owner "$PORT"), not from this state dir; using it"; return 0; fi
  check_port_free "$PORT" "Kafka, DNSENTINEL_KAFKA__BOOTSTRAP_SERVERS"
  check_port_free "$CONTROLLER_PORT" "Kafka controller, DNSENTINEL_STACK__KAFKA_CONTROLLER_PORT"
  local java; java="$(java_bin "${DS_JAVA_HOME:-}" 17 "Kafka $KAFKA_VERSION")"
  fetch
  mkdir -p "$DATA_DIR" "$DIR/logs"
  render "$DEPLOY_DIR/kafka/server.properties.tmpl" > "$CONF"
  kafka_jvm_opts "$HEAP"
  local jopts=("${KAFKA_JOPTS[@]}")
  if [ ! -f "$DATA_DIR/meta.properties" ]; then
    local cid
    cid="$(kafka_cluster_id)"
    say "formatting the KRaft log dir (cluster id $cid)"
    "$java" "${jopts[@]}" kafka.tools.StorageTool format -t "$cid" -c "$CONF" --ignore-formatted \
      >> "$DIR/logs/format.log" 2>&1 || fail_with_log "$DIR/logs/format.log" "kafka-storage format failed" \
      "remove $DATA_DIR if it holds an old or foreign cluster, then retry"
  fi
  : > "$LOG"
  spawn "$PIDFILE" "$LOG" "$java" "${jopts[@]}" kafka.Kafka "$CONF"
  local deadline=$((SECONDS + ${DS_START_TIMEOUT%.*}))
  until broker_up; do
    pid_alive "$PIDFILE" || fail_with_log "$LOG" "the broker exited during start-up" "see $LOG"
    [ $SECONDS -lt $deadline ] || fail_with_log "$LOG" "not ready on $HOST:$PORT within ${DS_START_TIMEOUT}s" \
      "see $LOG; raise DNSENTINEL_STACK__START_TIMEOUT_S on a loaded machine"
    sleep 0.5
  done
  say "healthy on $HOST:$PORT (controller $CONTROLLER_PORT)"
}

stop() {
  if adopted "$PIDFILE"; then say "left running: $(port_owner "$PORT") was not started from this state dir"; return 0; fi
  stop_pidfile "$PIDFILE" 60
  wait_port_closed "$PORT" 10 || die "port $PORT still listened on by $(port_owner "$PORT")"
  wait_port_closed "$CONTROLLER_PORT" 10 || die "port $CONTROLLER_PORT still listened on by $(port_owner "$CONTROLLER_PORT")"
  say "stopped"
}

status() {
  if adopted "$PIDFILE"; then echo "healthy external $(port_owner "$PORT")"; return 0; fi
  if ! pid_alive "$PIDFILE"; then echo "stopped"; return 3; fi
  if broker_up; then echo "healthy pid $(cat "$PIDFILE")"; return 0; fi
  echo "unhealthy pid $(cat "$PIDFILE"), $HOST:$PORT not serving"; return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) shift; show_logs "$LOG" "$@" ;;
  fetch) fetch ;;
  version) echo "$KAFKA_VERSION" ;;
  *) echo "usage: $0 start|stop|status|logs [-n N] [-f]|fetch|version" >&2; exit 2 ;;
esac
