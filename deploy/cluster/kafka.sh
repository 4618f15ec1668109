#!/usr/bin/env bash
# The cluster profile's Kafka: KAFKA_NODES nodes in KRaft combined mode (broker + controller each),
# SASL_SSL/SCRAM-SHA-512 for clients and between brokers, mutual TLS on the quorum, ACLs on.
# Config: deploy/multi/kafka/server.properties.tmpl, rendered with deploy/multi/cluster.env.
# Usage: kafka.sh start|stop|status [NODE]     kafka.sh logs [NODE] [-n N] [-f]
#        (NODE: 2 or kafka-2; none: every node)
# Topics and ACLs are made afterwards by dnsentinel.cli.cluster.kafka (it needs a client).
set -euo pipefail
SERVICE=kafka-cluster
source "$(dirname "$0")/../lib.sh"
# shellcheck source=../multi/cluster.env
source "$DEPLOY_DIR/multi/cluster.env"

CLUSTER_DIR="${DS_CLUSTER_DIR:-$DS_STATE_DIR/cluster}"
PKI="$CLUSTER_DIR/pki"
HOST="$CLUSTER_HOST"
# SCRAM users made at format time, one per principal of secrets.env that talks to Kafka.
SCRAM_USERS=(admin coredns worker replay dashboard)

node_dir() { printf '%s/kafka-%s\n' "$CLUSTER_DIR" "$1"; }
client_port() { echo $((KAFKA_CLIENT_PORT + $1 - 1)); }
internal_port() { echo $((KAFKA_INTERNAL_PORT + $1 - 1)); }
controller_port() { echo $((KAFKA_CONTROLLER_PORT + $1 - 1)); }
pidfile() { printf '%s/kafka.pid\n' "$(node_dir "$1")"; }
logfile() { printf '%s/logs/kafka.log\n' "$(node_dir "$1")"; }

# nodes [NODE]: the node numbers to act on (all without an argument).
nodes() {
  local n="${1:-}"
  if [ -z "$n" ]; then seq 1 "$KAFKA_NODES"; return; fi
  n="${n#kafka-}"
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$KAFKA_NODES" ] \
    || die "no Kafka node '$1'" "name one of kafka-1..kafka-$KAFKA_NODES (or 1..$KAFKA_NODES)"
  echo "$n"
}

# started N: the node's client port answers and it logged "Kafka Server started", which a
# KRaft broker does only once it is registered with the quorum, caught up and unfenced.
started() { port_open "$HOST" "$(client_port "$1")" && grep -q "Kafka Server started" "$(logfile "$1")" 2>/dev/null; }

render_node() {
  local n="$1" i voters="" supers="User:admin"
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    voters+="${voters:+,}$i@$HOST:$(controller_port "$i")"
    supers+=";User:kafka-$i"
  done
  NODE_ID="$n" NODE="kafka-$n" VOTERS="$voters" SUPER_USERS="$supers" \
    CLIENT_PORT="$(client_port "$n")" INTERNAL_PORT="$(internal_port "$n")" \
    CONTROLLER_PORT="$(controller_port "$n")" DATA_DIR="$(node_dir "$n")/data" \
    render "$DEPLOY_DIR/multi/kafka/server.properties.tmpl"
}

# format_node N JAVA: once per node: the shared cluster id and the SCRAM users in the bootstrap metadata.
format_node() {
  local n="$1" java="$2" dir u var scram=()
  dir="$(node_dir "$n")"
  [ -f "$dir/data/meta.properties" ] && return 0
  [ -s "$CLUSTER_DIR/kafka.cluster-id" ] || kafka_cluster_id > "$CLUSTER_DIR/kafka.cluster-id"
  for u in "${SCRAM_USERS[@]}"; do
    var="PASSWORD_$(echo "$u" | tr a-z A-Z)"
    scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=${!var}]")
  done
  say "kafka-$n: formatting the KRaft log dir (cluster id $(cat "$CLUSTER_DIR/kafka.cluster-id"), SCRAM users ${SCRAM_USERS[*]})"
  "$java" "${KAFKA_JOPTS[@]}" kafka.tools.StorageTool format -t "$(cat "$CLUSTER_DIR/kafka.cluster-id")" \
    -c "$dir/server.properties" --ignore-formatted "${scram[@]}" >> "$dir/logs/format.log" 2>&1 \
    || fail_with_log "$dir/logs/format.log" "kafka-$n: kafka-storage format failed" \
      "remove $dir/data if it holds an old or foreign cluster, then retry"
}

start_node() {
  local n="$1" java="$2" dir
  dir="$(node_dir "$n")"
  if pid_alive "$(pidfile "$n")"; then say "kafka-$n: already running (pid $(cat "$(pidfile "$n")"))"; return 0; fi
  check_port_free "$(client_port "$n")" "kafka-$n client, deploy/multi/cluster.env KAFKA_CLIENT_PORT"
  check_port_free "$(internal_port "$n")" "kafka-$n internal, deploy/multi/cluster.env KAFKA_INTERNAL_PORT"
  check_port_free "$(controller_port "$n")" "kafka-$n controller, deploy/multi/cluster.env KAFKA_CONTROLLER_PORT"
  mkdir -p "$dir/data" "$dir/logs"
  (umask 077; render_node "$n" > "$dir/server.properties")
  format_node "$n" "$java"
  : > "$(logfile "$n")"
  spawn "$(pidfile "$n")" "$(logfile "$n")" "$java" "${KAFKA_JOPTS[@]}" kafka.Kafka "$dir/server.properties"
  say "kafka-$n: started (pid $(cat "$(pidfile "$n")")), client $HOST:$(client_port "$n")"
}

start() {
  local n java list
  list="$(nodes "${1:-}")"
  "$DEPLOY_DIR/multi/pki.sh" "$CLUSTER_DIR" > /dev/null
  source "$CLUSTER_DIR/secrets.env"
  java="$(java_bin "${DS_JAVA_HOME:-}" 17 "Kafka $KAFKA_VERSION")"
  "$DEPLOY_DIR/services/kafka.sh" fetch
  kafka_jvm_opts "$KAFKA_HEAP"
  # One after another, without waiting in between: a node serves only once a majority of
  # the voters is up, so waiting for node 1 alone would never end.
  for n in $list; do start_node "$n" "$java"; done
  local deadline=$((SECONDS + ${DS_START_TIMEOUT%.*}))
  for n in $list; do
    until started "$n"; do
      pid_alive "$(pidfile "$n")" || fail_with_log "$(logfile "$n")" "kafka-$n exited during start-up" "see $(logfile "$n")"
      [ $SECONDS -lt $deadline ] || fail_with_log "$(logfile "$n")" \
        "kafka-$n not ready on $HOST:$(client_port "$n") within ${DS_START_TIMEOUT}s" \
        "a node needs a majority of the $KAFKA_NODES voters up; see $(logfile "$n")"
      sleep 0.5
    done
  done
  say "healthy: $(echo "$list" | sed 's/^/kafka-/' | paste -sd' ') registered (clients: $(bootstrap))"
}

bootstrap() {
  local i out=""
  for ((i = 1; i <= KAFKA_NODES; i++)); do out+="${out:+,}$HOST:$(client_port "$i")"; done
  echo "$out"
}

# stop [NODE]: TERM to the nodes at once: each broker first hands its partition leaderships over
# (controlled shutdown, approved by the quorum), then exits. Once fewer than a majority of the
# voters run, nobody can approve the last ones (Kafka would wait 5 minutes): they get 10 s, then
# KILL (nothing is lost: the page cache survives, the next start recovers the open segments).
stop() {
  local n list pid alive t=0 lost_at=""  # t: half-seconds since TERM
  list="$(nodes "${1:-}")"
  for n in $list; do pid_alive "$(pidfile "$n")" && kill -TERM "$(cat "$(pidfile "$n")")" 2>/dev/null || true; done
  while :; do
    alive=0
    for ((n = 1; n <= KAFKA_NODES; n++)); do pid_alive "$(pidfile "$n")" && alive=$((alive + 1)); done
    [ -z "$(for n in $list; do pid_alive "$(pidfile "$n")" && echo "$n"; done)" ] && break
    [ $alive -le $((KAFKA_NODES / 2)) ] && [ -z "$lost_at" ] && lost_at=$t
    if { [ -n "$lost_at" ] && [ $((t - lost_at)) -ge 20 ]; } || [ $t -ge 120 ]; then
      for n in $list; do
        pid_alive "$(pidfile "$n")" || continue
        pid="$(cat "$(pidfile "$n")")"
        warn "kafka-$n (pid $pid): no quorum left to approve its controlled shutdown; killing it"
        kill -KILL "$pid" 2>/dev/null || true
      done
      sleep 0.5
    fi
    sleep 0.5; t=$((t + 1))
  done
  for n in $list; do rm -f "$(pidfile "$n")"; done
  ports_closed Kafka $(for n in $list; do client_port "$n"; internal_port "$n"; controller_port "$n"; done)
  say "stopped: $(echo "$list" | sed 's/^/kafka-/' | paste -sd' ')"
}

# status [NODE]: "NODE ADDRESS STATE DETAIL" per node; exit 0 only if all are healthy.
status() {
  local n rc=0 addr pf list
  list="$(nodes "${1:-}")"
  for n in $list; do
    addr="$HOST:$(client_port "$n")"; pf="$(pidfile "$n")"
    if ! pid_alive "$pf"; then echo "kafka-$n $addr stopped -"; rc=3
    elif started "$n"; then echo "kafka-$n $addr healthy pid $(cat "$pf")"
    else echo "kafka-$n $addr unhealthy pid $(cat "$pf"), not serving (quorum needs a majority of the $KAFKA_NODES nodes)"; rc=1
    fi
  done
  return $rc
}

logs() {
  local node="" n=50 follow="" files=() list i
  case "${1:-}" in ""|-*) ;; *) node="$1"; shift ;; esac
  while [ $# -gt 0 ]; do
    case "$1" in -n) n="$2"; shift 2 ;; -f) follow="-F"; shift ;; *) shift ;; esac
  done
  list="$(nodes "$node")"
  for i in $list; do [ -e "$(logfile "$i")" ] && files+=("$(logfile "$i")"); done
  [ ${#files[@]} -gt 0 ] || die "no Kafka log yet in $CLUSTER_DIR" "start the nodes first: $0 start"
  tail -n "$n" $follow "${files[@]}"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  status) status "${2:-}" ;;
  logs) shift; logs "$@" ;;
  bootstrap) bootstrap ;;
  *) echo "usage: $0 start|stop|status [NODE] | logs [NODE] [-n N] [-f] | bootstrap" >&2; exit 2 ;;
esac
