#!/usr/bin/env bash
# The cluster profile's CoreDNS instances (COREDNS_NODES of deploy/multi/cluster.env), each
# rendered from deploy/multi/coredns/Corefile.tmpl: Redis through the Sentinels over TLS as ACL
# user "coredns", Kafka over SASL_SSL as SCRAM user "coredns". The binary is the one
# deploy/services/coredns.sh builds (one build for both profiles).
# Usage: coredns.sh start|stop|status|logs [NODE] [-n N] [-f]     (NODE: coredns-1, coredns-2, ...)
set -euo pipefail
SERVICE=coredns
source "$(dirname "$0")/../lib.sh"
source "$DEPLOY_DIR/multi/cluster.env"
CLUSTER_DIR="${DS_CLUSTER_DIR:-$DS_STATE_DIR/cluster}"
PKI="$CLUSTER_DIR/pki"
BIN="$DS_STATE_DIR/bin/coredns"
HOST="$CLUSTER_HOST"
KEY_PREFIX="${DS_COREDNS_KEY_PREFIX:-dnsentinel}"
QUERIES_TOPIC="${DS_COREDNS_QUERIES_TOPIC:-dns.queries}"
UPSTREAM="${DS_COREDNS_UPSTREAM:-}"

nodes() { local i; for ((i = 1; i <= COREDNS_NODES; i++)); do echo "coredns-$i"; done; }
# ports NODE: sets PORT HEALTH_PORT READY_PORT METRICS_PORT of that node.
ports() {
  local i="${1#coredns-}"
  PORT=$((COREDNS_PORT + 10 * (i - 1))); HEALTH_PORT=$((PORT + 1)); READY_PORT=$((PORT + 2)); METRICS_PORT=$((PORT + 3))
}
node_dir() { echo "$CLUSTER_DIR/$1"; }
healthy() { curl -fsS --max-time 2 "http://$HOST:$READY_PORT/ready" >/dev/null 2>&1; }

corefile() {
  local NODE="$1" SENTINELS BROKERS RESOLVER_BLOCK i
  ports "$NODE"
  SENTINELS="$(for ((i = 0; i < SENTINEL_NODES; i++)); do printf '%s:%s ' "$HOST" $((SENTINEL_PORT + i)); done)"
  BROKERS="$(for ((i = 0; i < KAFKA_NODES; i++)); do printf '%s:%s ' "$HOST" $((KAFKA_CLIENT_PORT + i)); done)"
  SENTINELS="${SENTINELS% }"; BROKERS="${BROKERS% }"
  if [ -n "$UPSTREAM" ]; then RESOLVER_BLOCK="$(render "$DEPLOY_DIR/coredns/resolver-forward.tmpl")"
  else RESOLVER_BLOCK="$(render "$DEPLOY_DIR/coredns/resolver-template.tmpl")"; fi
  render "$DEPLOY_DIR/multi/coredns/Corefile.tmpl"
}

start_node() {
  local node="$1" dir pidfile log
  dir="$(node_dir "$node")"; pidfile="$dir/coredns.pid"; log="$dir/coredns.log"
  ports "$node"
  if pid_alive "$pidfile" && healthy; then say "$node already running on $HOST:$PORT"; return 0; fi
  stop_pidfile "$pidfile" 10
  check_port_free "$PORT" "$node DNS"; check_port_free "$READY_PORT" "$node ready"
  mkdir -p "$dir"
  corefile "$node" > "$dir/Corefile"
  : > "$log"
  # The passwords reach CoreDNS through its environment only ({$VAR} in the Corefile).
  (set -a; source "$CLUSTER_DIR/secrets.env"; set +a
   export DNSENTINEL_REDIS_PASSWORD="$PASSWORD_COREDNS" DNSENTINEL_KAFKA_PASSWORD="$PASSWORD_COREDNS"
   cd "$dir" && spawn "$pidfile" "$log" "$BIN" -conf "$dir/Corefile")
  await_healthy "$pidfile" "$log" "$node (Corefile $dir/Corefile, ready on $HOST:$READY_PORT)" healthy
  say "$node healthy on $HOST:$PORT (udp+tcp)"
}

start() {
  [ -s "$CLUSTER_DIR/secrets.env" ] || die "no cluster secrets in $CLUSTER_DIR" "run the data services first: dnsentinel stack up --profile cluster"
  DS_STATE_DIR="$DS_STATE_DIR" "$DEPLOY_DIR/services/coredns.sh" build
  local n; for n in $(nodes); do start_node "$n"; done
}

stop() {
  local n; for n in $(nodes); do stop_pidfile "$(node_dir "$n")/coredns.pid" 15; done
  say "stopped"
}

status() {
  local n rc=0 pidfile
  for n in $(nodes); do
    ports "$n"; pidfile="$(node_dir "$n")/coredns.pid"
    if ! pid_alive "$pidfile"; then echo "$n $HOST:$PORT stopped -"; rc=1
    elif healthy; then echo "$n $HOST:$PORT healthy pid=$(cat "$pidfile")"
    else echo "$n $HOST:$PORT unhealthy pid=$(cat "$pidfile"),not-ready"; rc=1; fi
  done
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) shift; node="${1:-coredns-1}"; [ $# -gt 0 ] && shift; show_logs "$(node_dir "$node")/coredns.log" "$@" ;;
  corefile) corefile "${2:-coredns-1}" ;;
  *) echo "usage: $0 start|stop|status|logs [NODE] [-n N] [-f]|corefile [NODE]" >&2; exit 2 ;;
esac
