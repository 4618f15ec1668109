#!/usr/bin/env bash
# The cluster profile's workers (WORKER_NODES of deploy/multi/cluster.env): one consumer group,
# each with its own state dir (Faust data, model cache) as on separate hosts, reading the
# cluster's settings file ($DS_CLUSTER_DIR/dnsentinel.toml) and authenticating as user "worker"
# to Kafka, Elasticsearch and Redis. Also runs the dashboard (`dashboard` as NODE).
# Usage: apps.sh start|stop|status|logs [NODE] [-n N] [-f]    (NODE: worker-1, worker-2, dashboard)
set -euo pipefail
SERVICE=apps
source "$(dirname "$0")/../lib.sh"
source "$DEPLOY_DIR/multi/cluster.env"
CLUSTER_DIR="${DS_CLUSTER_DIR:-$DS_STATE_DIR/cluster}"
PY="${DS_PYTHON:-$REPO_DIR/.venv/bin/python}"
HOST="$CLUSTER_HOST"

nodes() { local i; for ((i = 1; i <= WORKER_NODES; i++)); do echo "worker-$i"; done; echo dashboard; }
node_dir() { echo "$CLUSTER_DIR/$1"; }
# port NODE: the HTTP port whose answer means "healthy" (worker web view, dashboard).
port() { case "$1" in dashboard) echo "$DASHBOARD_PORT" ;; *) echo $((WORKER_WEB_PORT + ${1#worker-} - 1)) ;; esac; }
healthy() {
  case "$1" in
    dashboard) curl -fsS --max-time 2 "http://$HOST:$(port "$1")/_stcore/health" >/dev/null 2>&1 ;;
    *) curl -fsS --max-time 2 "http://$HOST:$(port "$1")/health" >/dev/null 2>&1 ;;
  esac
}

# run NODE: the node's process with its identity; secrets only in its environment.
run_node() {
  local node="$1" dir user
  dir="$(node_dir "$node")"
  case "$node" in dashboard) user=dashboard ;; *) user=worker ;; esac
  set -a; source "$CLUSTER_DIR/secrets.env"; set +a
  local pw_var="PASSWORD_$(echo "$user" | tr a-z A-Z)"
  export DNSENTINEL_CONFIG="$CLUSTER_DIR/dnsentinel.toml" DNSENTINEL_STACK__STATE_DIR="$dir"
  export DNSENTINEL_REDIS__USERNAME="$user" DNSENTINEL_REDIS__PASSWORD="${!pw_var}"
  export DNSENTINEL_KAFKA__SASL_USERNAME="$user" DNSENTINEL_KAFKA__SASL_PASSWORD="${!pw_var}"
  export DNSENTINEL_ELASTICSEARCH__USERNAME="$user" DNSENTINEL_ELASTICSEARCH__PASSWORD="${!pw_var}"
  unset $(compgen -v PASSWORD_)
  case "$node" in
    dashboard) exec "$PY" -m dnsentinel.cli.main dashboard --port "$DASHBOARD_PORT" --address "$HOST" ;;
    *) local i="${node#worker-}"
       export DNSENTINEL_WORKER__WEB_PORT=$((WORKER_WEB_PORT + i - 1)) DNSENTINEL_WORKER__METRICS_PORT=$((WORKER_WEB_PORT + 100 + i - 1))
       exec "$PY" -m dnsentinel.cli.main worker --loglevel warning ;;
  esac
}

start_node() {
  local node="$1" dir pidfile log
  dir="$(node_dir "$node")"; pidfile="$dir/$node.pid"; log="$dir/$node.log"
  if pid_alive "$pidfile"; then
    # Running: a busy worker can miss one 2 s health probe, and restarting it would cost the group
    # a rebalance and a replay of its uncommitted events; wait for it. Only a dead node restarts.
    await_healthy "$pidfile" "$log" "$node (running, pid $(cat "$pidfile"))" healthy "$node"
    say "$node already running"; return 0
  fi
  rm -f "$pidfile"
  check_port_free "$(port "$node")" "$node"
  mkdir -p "$dir"
  : > "$log"
  spawn "$pidfile" "$log" "$0" run "$node"
  await_healthy "$pidfile" "$log" "$node (on $HOST:$(port "$node"))" healthy "$node"
  say "$node healthy on $HOST:$(port "$node")"
}

start() {
  [ -s "$CLUSTER_DIR/dnsentinel.toml" ] || die "no cluster settings at $CLUSTER_DIR/dnsentinel.toml" "start the data services first: dnsentinel stack up --profile cluster"
  local n; for n in $(nodes); do start_node "$n"; done
}

stop() { local n; for n in $(nodes); do stop_pidfile "$(node_dir "$n")/$n.pid" 30; done; say "stopped"; }

status() {
  local n rc=0 pidfile
  for n in $(nodes); do
    pidfile="$(node_dir "$n")/$n.pid"
    if ! pid_alive "$pidfile"; then echo "$n $HOST:$(port "$n") stopped -"; rc=1
    elif healthy "$n"; then echo "$n $HOST:$(port "$n") healthy pid=$(cat "$pidfile")"
    else echo "$n $HOST:$(port "$n") unhealthy pid=$(cat "$pidfile"),no-answer"; rc=1; fi
  done
  return $rc
}

case "${1:-}" in
  start) if [ -n "${2:-}" ]; then start_node "$2"; else start; fi ;;
  stop) if [ -n "${2:-}" ]; then stop_pidfile "$(node_dir "$2")/$2.pid" 30; else stop; fi ;;
  status) status ;;
  run) run_node "$2" ;;
  logs) shift; node="${1:-worker-1}"; [ $# -gt 0 ] && shift; show_logs "$(node_dir "$node")/$node.log" "$@" ;;
  *) echo "usage: $0 start|stop|status|logs [NODE] [-n N] [-f]" >&2; exit 2 ;;
esac
