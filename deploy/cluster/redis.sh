#!/usr/bin/env bash
# Redis of the cluster profile: a primary, a replica and 3 Sentinels (quorum 2), TLS only, ACL
# users per component, AOF on. Configs are rendered from deploy/multi/redis/*.tmpl.
# Usage: redis.sh start|stop|status|logs [NODE] [-n N] [-f]
#   NODE: redis-primary, redis-replica, sentinel-1..N (status/logs; start/stop act on all).
# "primary"/"replica" name the nodes as first started; after a failover the master is whichever
# one the Sentinels name, and `status` says so.
set -euo pipefail
SERVICE=redis-cluster
source "$(dirname "$0")/../lib.sh"
source "$DEPLOY_DIR/multi/cluster.env"

CLUSTER_DIR="${DS_CLUSTER_DIR:-$DS_STATE_DIR/cluster}"
PKI="$CLUSTER_DIR/pki"
BASE="$CLUSTER_DIR/redis"
TEMPLATES="$DEPLOY_DIR/multi/redis"
KEY_PREFIX="${DS_REDIS_KEY_PREFIX:-dnsentinel}"
TIMEOUT="${DS_START_TIMEOUT%.*}"

DATA_NODES=(redis-primary redis-replica)
SENTINELS=()
for ((i = 1; i <= SENTINEL_NODES; i++)); do SENTINELS+=("sentinel-$i"); done

port_of() {
  case "$1" in
    redis-primary) echo "$REDIS_PRIMARY_PORT" ;;
    redis-replica) echo "$REDIS_REPLICA_PORT" ;;
    sentinel-*) echo $((SENTINEL_PORT + ${1#sentinel-} - 1)) ;;
    *) die "unknown node $1" "pick one of: ${DATA_NODES[*]} ${SENTINELS[*]}" ;;
  esac
}
pidfile_of() { case "$1" in sentinel-*) echo "$BASE/$1/sentinel.pid" ;; *) echo "$BASE/$1/redis.pid" ;; esac; }
log_of() { case "$1" in sentinel-*) echo "$BASE/$1/sentinel.log" ;; *) echo "$BASE/$1/redis.log" ;; esac; }

load_secrets() {
  [ -s "$CLUSTER_DIR/secrets.env" ] || die "no $CLUSTER_DIR/secrets.env" "run deploy/multi/pki.sh $CLUSTER_DIR (redis.sh start does)"
  # shellcheck disable=SC1091
  source "$CLUSTER_DIR/secrets.env"
  local p
  for p in ADMIN COREDNS WORKER DASHBOARD REPLICATION SENTINEL; do
    local var="PASSWORD_$p"
    [ -n "${!var:-}" ] || die "$var missing from $CLUSTER_DIR/secrets.env" "delete the file and run deploy/multi/pki.sh $CLUSTER_DIR"
    printf -v "PASSWORD_${p}_SHA256" '%s' "$(printf '%s' "${!var}" | sha256sum | cut -d' ' -f1)"
  done
}

# cli NODE ARGS...: redis-cli over TLS as the admin user (password through the environment, not argv).
cli() {
  local node="$1"; shift
  REDISCLI_AUTH="$PASSWORD_ADMIN" timeout 5 redis-cli --tls --cacert "$PKI/ca.crt" -h "$CLUSTER_HOST" \
    -p "$(port_of "$node")" --user admin --no-auth-warning "$@" 2>/dev/null
}

# The ACL file (no comments: Redis refuses them there), with the command sets of users.acl.tmpl.
render_acl() {
  render "$TEMPLATES/users.acl.tmpl" | grep -v '^#' | grep -v '^$' > "$1.tmp"
  chmod 600 "$1.tmp"; mv "$1.tmp" "$1"
}

render_conf() { # render_conf NODE TEMPLATE DEST [EXTRA_LINE]
  local NODE="$1" NODE_DIR="$BASE/$1" PORT
  PORT="$(port_of "$1")"
  if [ -s "$3" ]; then # Sentinel owns it after the first start (see the templates)
    [ "$2" -nt "$3" ] && warn "$NODE: $2 changed after $3 was written; the node keeps its config (Sentinel's state is in it); to start over: redis.sh stop && rm -r $BASE"
    return 0
  fi
  { render "$2"; [ -z "${4:-}" ] || printf '%s\n' "$4"; } > "$3.tmp"
  chmod 600 "$3.tmp"; mv "$3.tmp" "$3"
}

serves_tls() { [ "$(cli "$1" ping)" = PONG ]; }

start_node() { # start_node NODE
  local node="$1" dir="$BASE/$1" port pidfile conf bin
  port="$(port_of "$node")"; pidfile="$(pidfile_of "$node")"
  mkdir -p "$dir/data"; chmod 700 "$dir"
  if pid_alive "$pidfile" && serves_tls "$node"; then
    apply_users "$node"
    say "$node already running on $CLUSTER_HOST:$port (users re-applied)"
    return 0
  fi
  check_port_free "$port" "$node, deploy/multi/cluster.env"
  bin="$(command -v redis-server)" || die "redis-server is not installed" "run deploy/install-system.sh (apt-get install redis-server)"
  case "$node" in
    sentinel-*)
      conf="$dir/sentinel.conf"
      render_conf "$node" "$TEMPLATES/sentinel.conf.tmpl" "$conf"
      "$bin" "$conf" --sentinel || fail_with_log "$(log_of "$node")" "$node did not start" "see $(log_of "$node")" ;;
    *)
      conf="$dir/redis.conf"
      render_acl "$dir/users.acl"
      local extra=""
      [ "$node" = redis-replica ] && extra="replicaof $REDIS_PRIMARY_HOST $REDIS_PRIMARY_PORT"
      render_conf "$node" "$TEMPLATES/redis.conf.tmpl" "$conf" "$extra"
      "$bin" "$conf" || fail_with_log "$(log_of "$node")" "$node did not start" "see $(log_of "$node")" ;;
  esac
  local deadline=$((SECONDS + TIMEOUT))
  until serves_tls "$node"; do
    [ $SECONDS -lt $deadline ] || fail_with_log "$(log_of "$node")" "no TLS PONG from $node ($CLUSTER_HOST:$port) within ${TIMEOUT}s" "see $(log_of "$node")"
    sleep 0.2
  done
  case "$node" in sentinel-*) apply_users "$node" ;; esac
  say "$node up on $CLUSTER_HOST:$port (TLS)"
}

# apply_users NODE: the users of the templates, live. Data nodes reload their ACL file; a Sentinel
# keeps its users in sentinel.conf (rendered once), so they are set again and the file rewritten.
apply_users() {
  local node="$1" line users NODE="$1" NODE_DIR="$BASE/$1" PORT
  PORT="$(port_of "$1")"
  case "$node" in
    sentinel-*)
      users="$(render "$TEMPLATES/sentinel.conf.tmpl" | grep '^user ' | sed -E 's/^user ([^ ]+) /\1 reset /')"
      while read -r line; do
        # shellcheck disable=SC2086
        [ "$(cli "$node" acl setuser $line | head -n1)" = OK ] || die "$node refused the user ${line%% *}" "see $(log_of "$node")"
      done <<< "$users"
      cli "$node" sentinel flushconfig >/dev/null ;;
    *)
      render_acl "$BASE/$node/users.acl"
      [ "$(cli "$node" acl load | head -n1)" = OK ] || die "$node did not load $BASE/$node/users.acl" "see $(log_of "$node")" ;;
  esac
}

# master_addr: "HOST PORT" of the master as the first answering Sentinel says.
master_addr() {
  local s out
  for s in "${SENTINELS[@]}"; do
    out="$(cli "$s" sentinel get-master-addr-by-name "$REDIS_MASTER_NAME" | tr '\n' ' ')" || continue
    [ -n "${out// /}" ] && { echo "${out% }"; return 0; }
  done
  return 1
}

node_at_port() { local n; for n in "${DATA_NODES[@]}"; do [ "$(port_of "$n")" = "$1" ] && echo "$n"; done; }

# info_field NODE SECTION FIELD
info_field() { cli "$1" info "$2" | tr -d '\r' | sed -n "s/^$3://p"; }

# sentinel_view NODE: "num-slaves num-other-sentinels flags" of the monitored master.
sentinel_view() {
  cli "$1" sentinel master "$REDIS_MASTER_NAME" | tr -d '\r' | paste - - \
    | awk -F'\t' '$1=="num-slaves"{s=$2} $1=="num-other-sentinels"{o=$2} $1=="flags"{f=$2} END{print s+0, o+0, f}'
}

in_sync() { # the replica of the current master is online and linked
  local addr master replica
  addr="$(master_addr 2>/dev/null)" || addr="$REDIS_PRIMARY_HOST $REDIS_PRIMARY_PORT"
  master="$(node_at_port "${addr#* }")"; [ -n "$master" ] || return 1
  for replica in "${DATA_NODES[@]}"; do [ "$replica" != "$master" ] && break; done
  [ "$(info_field "$replica" replication master_link_status)" = up ] \
    && info_field "$master" replication slave0 | grep -q 'state=online'
}

all_sentinels_agree() {
  local s view others=$((SENTINEL_NODES - 1))
  for s in "${SENTINELS[@]}"; do
    view="$(sentinel_view "$s")" || return 1
    set -- $view
    [ "${1:-0}" -ge 1 ] && [ "${2:-0}" -ge "$others" ] && [ "${3:-}" = master ] || return 1
  done
}

start() {
  "$DEPLOY_DIR/multi/pki.sh" "$CLUSTER_DIR" >/dev/null
  load_secrets
  local n
  for n in "${DATA_NODES[@]}"; do start_node "$n"; done
  for n in "${SENTINELS[@]}"; do start_node "$n"; done
  local deadline=$((SECONDS + TIMEOUT))
  until in_sync; do
    [ $SECONDS -lt $deadline ] || fail_with_log "$(log_of redis-replica)" "the replica is not in sync within ${TIMEOUT}s" "see the logs: deploy/cluster/redis.sh logs redis-replica"
    sleep 0.3
  done
  until all_sentinels_agree; do
    [ $SECONDS -lt $deadline ] || fail_with_log "$(log_of sentinel-1)" "the Sentinels do not all see the master, its replica and each other within ${TIMEOUT}s" "see deploy/cluster/redis.sh logs sentinel-1"
    sleep 0.5
  done
  local m; m="$(master_addr)"; say "healthy: master ${m/ /:}, replica in sync, $SENTINEL_NODES Sentinels agree"
}

stop_node() {
  local node="$1" pidfile port
  pidfile="$(pidfile_of "$node")"; port="$(port_of "$node")"
  if pid_alive "$pidfile"; then
    case "$node" in sentinel-*) ;; *) cli "$node" shutdown >/dev/null || true ;; esac
    stop_pidfile "$pidfile" 15
  fi
  rm -f "$pidfile"
  wait_port_closed "$port" 10 || die "port $port ($node) still listened on by $(port_owner "$port")"
}

stop() {
  if [ -s "$CLUSTER_DIR/secrets.env" ]; then load_secrets; else PASSWORD_ADMIN=""; fi
  local n
  # Sentinels first, so stopping the master does not start a failover.
  for n in "${SENTINELS[@]}" redis-replica redis-primary; do stop_node "$n"; done
  say "stopped"
}

# status [NODE]: "NODE ADDRESS STATE DETAIL" per node; 0 only if all are healthy.
status() {
  local nodes=("${DATA_NODES[@]}" "${SENTINELS[@]}") rc=0 n addr master_port=""
  [ -n "${1:-}" ] && nodes=("$1")
  if [ -s "$CLUSTER_DIR/secrets.env" ]; then load_secrets; else PASSWORD_ADMIN=""; fi
  addr="$(master_addr 2>/dev/null)" && master_port="${addr#* }"
  for n in "${nodes[@]}"; do
    local port pidfile line
    port="$(port_of "$n")"; pidfile="$(pidfile_of "$n")"
    if ! pid_alive "$pidfile"; then
      line="stopped -"; rc=1
    elif ! serves_tls "$n"; then
      line="unhealthy pid $(cat "$pidfile") does not answer PING over TLS"; rc=1
    else
      case "$n" in
        sentinel-*)
          local view; view="$(sentinel_view "$n")"; set -- $view
          if [ "${3:-}" = master ] && [ "${1:-0}" -ge 1 ] && [ "${2:-0}" -ge $((SENTINEL_NODES - 1)) ]; then
            line="healthy sentinel: master ${addr/ /:}, $1 replica(s), $2 other sentinel(s)"
          else
            line="unhealthy sentinel: master flags ${3:-unknown}, $1 replica(s), $2 other sentinel(s)"; rc=1
          fi ;;
        *)
          local role; role="$(info_field "$n" replication role)"
          if [ "$role" = master ]; then
            if [ -n "$master_port" ] && [ "$port" != "$master_port" ]; then
              line="unhealthy role master, but the Sentinels name ${addr/ /:}"; rc=1
            else
              line="healthy master, $(info_field "$n" replication connected_slaves) replica(s)"
            fi
          else
            local link; link="$(info_field "$n" replication master_link_status)"
            if [ "$link" = up ]; then
              line="healthy replica of $(info_field "$n" replication master_host):$(info_field "$n" replication master_port), link up"
            else
              line="unhealthy replica, link to master ${link:-unknown}"; rc=1
            fi
          fi ;;
      esac
    fi
    printf '%s %s:%s %s\n' "$n" "$CLUSTER_HOST" "$port" "$line"
  done
  return $rc
}

logs() {
  local node="${1:-}"; shift || true
  case "$node" in ""|-*) die "logs needs a node" "pick one of: ${DATA_NODES[*]} ${SENTINELS[*]}" ;; esac
  port_of "$node" >/dev/null
  show_logs "$(log_of "$node")" "$@"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) shift; status "$@" ;;
  logs) shift; logs "$@" ;;
  *) echo "usage: $0 start|stop|status|logs [NODE] [-n N] [-f]" >&2; exit 2 ;;
esac
