#!/usr/bin/env bash
# Redis (the verdict cache) from Debian's redis-server, our own instance and config.
# Usage: redis.sh start|stop|status|logs [-n N] [-f]|fetch|version
set -euo pipefail
SERVICE=redis
source "$(dirname "$0")/../lib.sh"

HOST="${DS_REDIS_HOST:-127.0.0.1}"
PORT="${DS_REDIS_PORT:-6379}"
DIR="$DS_STATE_DIR/redis"
PIDFILE="$DIR/redis.pid"
LOG="$DIR/logs/redis.log"
CONF="$DIR/redis.conf"

server_bin() {
  command -v redis-server || die "redis-server is not installed" "run deploy/install-system.sh (apt-get install redis-server)"
}

ping() { timeout 3 redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null | grep -q PONG; }
serves() { ping; }

installed_version() { "$(server_bin)" --version | sed -nE 's/.* v=([0-9.]+).*/\1/p'; }

write_conf() {
  mkdir -p "$DIR/data" "$DIR/logs"
  cat > "$CONF" <<CONF
# Written by deploy/services/redis.sh on every start; edit the settings, not this file.
bind $HOST
port $PORT
daemonize yes
pidfile $PIDFILE
logfile $LOG
dir $DIR/data
dbfilename dump.rdb
save 300 100
appendonly no
protected-mode no
maxmemory-policy noeviction
CONF
}

start() {
  if pid_alive "$PIDFILE" && ping; then say "already running on $HOST:$PORT"; return 0; fi
  if adopted "$PIDFILE"; then say "$HOST:$PORT is already served by $(port_owner "$PORT"), not from this state dir; using it"; return 0; fi
  check_port_free "$PORT" "Redis, DNSENTINEL_REDIS__URL"
  local bin; bin="$(server_bin)"
  case "$(installed_version)" in
    "$REDIS_VERSION".*) ;;
    *) warn "redis-server $(installed_version) is installed; the stack is tested with $REDIS_VERSION.x" ;;
  esac
  write_conf
  "$bin" "$CONF" || fail_with_log "$LOG" "redis-server did not start" "see $LOG"
  local deadline=$((SECONDS + ${DS_START_TIMEOUT%.*}))
  until ping; do
    [ $SECONDS -lt $deadline ] || fail_with_log "$LOG" "no PONG from $HOST:$PORT within ${DS_START_TIMEOUT}s" "see $LOG"
    sleep 0.2
  done
  say "healthy on $HOST:$PORT"
}

stop() {
  if adopted "$PIDFILE"; then say "left running: $(port_owner "$PORT") was not started from this state dir"; return 0; fi
  if pid_alive "$PIDFILE"; then
    timeout 10 redis-cli -h "$HOST" -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    stop_pidfile "$PIDFILE" 10
  fi
  rm -f "$PIDFILE"
  wait_port_closed "$PORT" 10 || die "port $PORT still listened on by $(port_owner "$PORT")"
  say "stopped"
}

status() {
  if adopted "$PIDFILE"; then echo "healthy external $(port_owner "$PORT")"; return 0; fi
  if ! pid_alive "$PIDFILE"; then echo "stopped"; return 3; fi
  if ping; then echo "healthy pid $(cat "$PIDFILE")"; return 0; fi
  echo "unhealthy pid $(cat "$PIDFILE") does not answer PING"; return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) shift; show_logs "$LOG" "$@" ;;
  fetch) server_bin >/dev/null ;;
  version) installed_version 2>/dev/null || echo "$REDIS_VERSION" ;;
  *) echo "usage: $0 start|stop|status|logs [-n N] [-f]|fetch|version" >&2; exit 2 ;;
esac
