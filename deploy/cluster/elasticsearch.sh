#!/usr/bin/env bash
# The cluster profile's Elasticsearch: ES_NODES nodes (master+data+ingest each), security on,
# TLS on HTTP and transport (certificates of deploy/multi/pki.sh), users and roles in the
# file realm (deploy/multi/elasticsearch/roles.yml; passwords from secrets.env).
# Config: deploy/multi/elasticsearch/elasticsearch.yml.tmpl, rendered with deploy/multi/cluster.env.
# Usage: elasticsearch.sh start|stop|status [NODE]     elasticsearch.sh logs [NODE] [-n N] [-f]
#        elasticsearch.sh url                          (NODE: 2 or es-2; none: every node)
#
# Same distribution, JDK and non-root user as the single node (deploy/lib.sh es_*): as root
# the nodes run as ES_USER in a runtime directory that user can reach.
set -euo pipefail
SERVICE=es-cluster
source "$(dirname "$0")/../lib.sh"
# shellcheck source=../multi/cluster.env
source "$DEPLOY_DIR/multi/cluster.env"

CLUSTER_DIR="${DS_CLUSTER_DIR:-$DS_STATE_DIR/cluster}"
PKI="$CLUSTER_DIR/pki"
SECRETS="$CLUSTER_DIR/secrets.env"
HOST="$CLUSTER_HOST"
LINK="$CLUSTER_DIR/elasticsearch"
TEMPLATES="$DEPLOY_DIR/multi/elasticsearch"
# Processors each node sizes its thread pools for: the profile's three nodes share one small
# machine with Kafka and Redis; real hosts leave node.processors out (all cores).
PROCESSORS="${DS_CLUSTER_ES_PROCESSORS:-1}"
# File-realm users: NAME:ROLE; coredns and replay never talk to Elasticsearch.
REALM_USERS=(admin:superuser worker:dnsentinel_worker dashboard:dnsentinel_dashboard)
declare -A LOG_OFFSET=()   # node -> size of its log before this start (errors show what came after)

http_port() { echo $((ES_HTTP_PORT + $1 - 1)); }
transport_port() { echo $((ES_TRANSPORT_PORT + $1 - 1)); }
url() { printf 'https://%s:%s\n' "$HOST" "$(http_port "$1")"; }

# setup_dirs [create]: RT (runtime dir), ES_HOME; only `start` (create) makes user and dirs.
setup_dirs() {
  es_dirs "$LINK" "${1:-}"
}
node_dir() { printf '%s/es-%s\n' "$RT" "$1"; }
pidfile() { printf '%s/es.pid\n' "$(node_dir "$1")"; }
logfile() { printf '%s/logs/dnsentinel.log\n' "$(node_dir "$1")"; }   # <cluster.name>.log
launch_log() { printf '%s/logs/launcher.log\n' "$(node_dir "$1")"; }

# nodes [NODE]: the node numbers to act on (all without an argument).
nodes() {
  local n="${1:-}"
  if [ -z "$n" ]; then seq 1 "$ES_NODES"; return; fi
  n="${n#es-}"
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$ES_NODES" ] \
    || die "no Elasticsearch node '$1'" "name one of es-1..es-$ES_NODES (or 1..$ES_NODES)"
  echo "$n"
}

load_secrets() {
  [ -s "$SECRETS" ] || return 1
  # shellcheck disable=SC1090
  source "$SECRETS"
  [ -n "${PASSWORD_ADMIN:-}" ]
}

# api N PATH [CURL_ARGS...]: GET PATH on node N over HTTPS as admin, the CA checked; the
# password goes through stdin, never the command line.
api() {
  local n="$1" path="$2"; shift 2
  printf 'user = "admin:%s"\n' "$PASSWORD_ADMIN" \
    | curl -sS --max-time "${API_TIMEOUT:-5}" --cacert "$PKI/ca.crt" -K - "$@" "$(url "$n")$path" 2>/dev/null
}

# answers N: the node's HTTPS port answers an authenticated request (any cluster state).
answers() { [ "$(api "$1" /_security/_authenticate -o /dev/null -w '%{http_code}')" = 200 ]; }

# cluster_health N: "STATUS NODES" as node N sees the cluster, or nothing.
cluster_health() {
  api "$1" "/_cluster/health" | sed -nE 's/.*"status":"([a-z]+)".*"number_of_nodes":([0-9]+).*/\1 \2/p'
}

# --- configuration -------------------------------------------------------------------------

render_node() {
  local n="$1" dir i seeds="" masters=""
  dir="$(node_dir "$n")"
  for ((i = 1; i <= ES_NODES; i++)); do
    seeds+="${seeds:+, }\"$HOST:$(transport_port "$i")\""
    masters+="${masters:+, }es-$i"
  done
  # Bootstrapping settings only until the cluster has formed once (afterwards a node that
  # bootstraps again, e.g. with a wiped data dir, would make a second cluster).
  local initial="# cluster.initial_master_nodes: left out, the cluster has formed ($RT/.formed)"
  [ -e "$RT/.formed" ] || initial="cluster.initial_master_nodes: [$masters]"
  NODE="es-$n" NODE_HOST="$HOST" HTTP_PORT="$(http_port "$n")" TRANSPORT_PORT="$(transport_port "$n")" \
    DATA_DIR="$dir/data" LOG_DIR="$dir/logs" SEED_HOSTS="$seeds" INITIAL_MASTERS="$initial" \
    render "$TEMPLATES/elasticsearch.yml.tmpl"
}

# realm_files JAVA: $RT/realm/{users,users_roles} from secrets.env, made with the distribution's
# elasticsearch-users (bcrypt hashes); remade only when a password or the user list changes.
realm_files() {
  local java="$1" conf="$RT/realm" stamp entry user role var
  stamp="$(for entry in "${REALM_USERS[@]}"; do user="${entry%%:*}"; var="PASSWORD_${user^^}"
    printf '%s:%s:%s\n' "$entry" "$(printf '%s' "${!var}" | sha256sum | cut -c1-16)"; done)"
  [ -s "$conf/users" ] && [ "$(cat "$conf/.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  say "writing the file-realm users (${REALM_USERS[*]%%:*})"
  rm -rf "$conf"; mkdir -p "$conf"; : > "$conf/elasticsearch.yml"; : > "$conf/users"; : > "$conf/users_roles"
  for entry in "${REALM_USERS[@]}"; do
    user="${entry%%:*}" role="${entry#*:}" var="PASSWORD_$(echo "${entry%%:*}" | tr a-z A-Z)"
    # The tool reads the password twice from stdin when no -p is given.
    printf '%s\n%s\n' "${!var}" "${!var}" \
      | ES_JAVA_HOME="$(dirname "$(dirname "$java")")" ES_PATH_CONF="$conf" \
        "$ES_HOME/bin/elasticsearch-users" useradd "$user" -r "$role" > "$conf/tool.log" 2>&1 \
      || fail_with_log "$conf/tool.log" "elasticsearch-users could not add $user" "see $conf/tool.log"
  done
  printf '%s\n' "$stamp" > "$conf/.stamp"
}

# configure_node N: the node's config dir: distribution defaults, elasticsearch.yml, heap,
# its certificate (ES reads TLS files from its config dir only), roles and users.
configure_node() {
  local n="$1" dir conf
  dir="$(node_dir "$n")"; conf="$dir/config"
  mkdir -p "$conf/certs" "$conf/jvm.options.d" "$dir/data" "$dir/logs"
  cp -n "$ES_HOME/config/jvm.options" "$ES_HOME/config/log4j2.properties" "$conf/"
  render_node "$n" > "$conf/elasticsearch.yml"
  printf -- '-Xms%s\n-Xmx%s\n' "$ES_HEAP" "$ES_HEAP" > "$conf/jvm.options.d/heap.options"
  install -m 600 "$PKI/es-$n.crt" "$conf/certs/node.crt"
  install -m 600 "$PKI/es-$n.key" "$conf/certs/node.key"
  install -m 644 "$PKI/ca.crt" "$conf/certs/ca.crt"
  install -m 644 "$TEMPLATES/roles.yml" "$conf/roles.yml"
  install -m 600 "$RT/realm/users" "$conf/users"
  install -m 600 "$RT/realm/users_roles" "$conf/users_roles"
  [ "$(id -u)" -eq 0 ] && chown -R "$ES_USER:" "$dir"
  return 0
}

# --- start / stop ----------------------------------------------------------------------------

# launch_node N JAVA: start node N in the background (the launcher daemonizes the node and
# returns once it has joined a cluster or given up waiting); returns once its transport port
# is open, so the next node finds it; fails with the logs when it dies first.
launch_node() {
  local n="$1" java="$2" dir launcher t0=$SECONDS
  dir="$(node_dir "$n")"
  check_port_free "$(http_port "$n")" "es-$n HTTP, deploy/multi/cluster.env ES_HTTP_PORT"
  check_port_free "$(transport_port "$n")" "es-$n transport, deploy/multi/cluster.env ES_TRANSPORT_PORT"
  configure_node "$n"
  rm -f "$(pidfile "$n")"
  : > "$(launch_log "$n")"
  LOG_OFFSET[$n]="$(stat -c %s "$(logfile "$n")" 2>/dev/null || echo 0)"
  (cd "$dir/logs" && as_es setsid env ES_JAVA_HOME="$(dirname "$(dirname "$java")")" ES_PATH_CONF="$dir/config" \
    "$ES_HOME/bin/elasticsearch" -d -p "$(pidfile "$n")" -E node.processors="$PROCESSORS" \
    >> "$(launch_log "$n")" 2>&1 < /dev/null) &
  launcher=$!
  local deadline=$((SECONDS + ${DS_START_TIMEOUT%.*}))
  until pid_alive "$(pidfile "$n")" && port_open "$HOST" "$(transport_port "$n")"; do
    if ! kill -0 "$launcher" 2>/dev/null && ! pid_alive "$(pidfile "$n")"; then
      node_failed "$n" "es-$n exited during start-up"
    fi
    [ $SECONDS -lt $deadline ] || node_failed "$n" "es-$n did not open its transport port within ${DS_START_TIMEOUT}s"
    sleep 0.5
  done
  say "es-$n: transport $HOST:$(transport_port "$n") open after $((SECONDS - t0))s (pid $(cat "$(pidfile "$n")"))"
}

# node_failed N MESSAGE: what the launcher said (stack frames left out) and what the node logged
# during this start, then the error.
node_failed() {
  local n="$1" msg="$2" log offset
  log="$(logfile "$n")"; offset="${LOG_OFFSET[$n]:-0}"
  if [ -s "$(launch_log "$n")" ]; then
    printf '%s: %s says:\n' "$SERVICE" "$(launch_log "$n")" >&2
    grep -vE '^\s+at |^\s+\.\.\. [0-9]+ more|^\s*$' "$(launch_log "$n")" | tail -n 12 | cut -c1-400 | sed 's/^/    /' >&2
  fi
  if [ -s "$log" ] && [ "$(stat -c %s "$log")" -gt "$offset" ]; then
    printf '%s: last lines es-%s logged:\n' "$SERVICE" "$n" >&2
    tail -c +$((offset + 1)) "$log" | grep -vE '^\s+at |^\s+\.\.\. [0-9]+ more' | tail -n 15 | cut -c1-400 | sed 's/^/    /' >&2
  fi
  die "$msg" "see $log and $(launch_log "$n"); a node that starts alone waits for a majority of es-1..es-$ES_NODES"
}

# await_cluster LIST T0: every node of LIST answers HTTPS, then the cluster is green (yellow
# while some node of the cluster is down) with every running node joined.
await_cluster() {
  local list="$1" t0="$2" n running=0 want=green health deadline=$((SECONDS + ${DS_START_TIMEOUT%.*}))
  for n in $list; do
    until answers "$n"; do
      pid_alive "$(pidfile "$n")" || node_failed "$n" "es-$n exited during start-up"
      [ $SECONDS -lt $deadline ] || node_failed "$n" "es-$n not answering on $(url "$n") within ${DS_START_TIMEOUT}s"
      sleep 1
    done
    say "es-$n: serving $(url "$n") $((SECONDS - t0))s after the start"
  done
  for ((n = 1; n <= ES_NODES; n++)); do pid_alive "$(pidfile "$n")" && running=$((running + 1)); done
  [ "$running" -eq "$ES_NODES" ] || want=yellow
  n="$(echo "$list" | head -n1)"
  until health="$(cluster_health "$n")" && [ "${health#* }" -ge "$running" ] \
      && { [ "${health% *}" = green ] || { [ "$want" = yellow ] && [ "${health% *}" = yellow ]; }; }; do
    [ $SECONDS -lt $deadline ] || die "cluster not $want with $running nodes within ${DS_START_TIMEOUT}s (now: ${health:-no answer})" \
      "see $0 status and $0 logs"
    sleep 1
  done
  [ "$running" -lt $(((ES_NODES + 2) / 2)) ] || touch "$RT/.formed"
  say "cluster ${health% *} with ${health#* } nodes, $((SECONDS - t0))s after the start"
}

# put_live SRC DEST MODE: replace a file a running node watches, in one rename, already owned by
# ES_USER: installed in place, the node could read it between the copy and the chown (root's, 0600),
# fail, and keep an empty realm (every login 401) until the file's content changes again.
put_live() {
  local tmp; tmp="$(dirname "$2")/.$(basename "$2").tmp"
  install -m "$3" "$1" "$tmp"
  [ "$(id -u)" -ne 0 ] || chown "$ES_USER:" "$tmp"
  mv -f "$tmp" "$2"
}

start() {
  local n java list t0=$SECONDS todo=""
  list="$(nodes "${1:-}")"
  "$DEPLOY_DIR/multi/pki.sh" "$CLUSTER_DIR" > /dev/null
  load_secrets || die "no PASSWORD_ADMIN in $SECRETS" "remove $SECRETS and start again (pki.sh recreates it)"
  setup_dirs create
  java="$(es_java)"
  es_unpack "$RT"
  if [ "$(id -u)" -eq 0 ] && [ "$(stat -c %U "$ES_HOME")" != "$ES_USER" ]; then chown -R "$ES_USER:" "$ES_HOME"; fi
  realm_files "$java"
  for n in $list; do
    if pid_alive "$(pidfile "$n")"; then
      say "es-$n: already running (pid $(cat "$(pidfile "$n")"))"
      # The users may have changed: the file realm reloads its files by itself.
      put_live "$RT/realm/users" "$(node_dir "$n")/config/users" 600
      put_live "$RT/realm/users_roles" "$(node_dir "$n")/config/users_roles" 600
      put_live "$TEMPLATES/roles.yml" "$(node_dir "$n")/config/roles.yml" 644
    else
      kill_strays "$n"
      todo+="$n "
    fi
  done
  # One after another, each once its transport port is open; none waits for the cluster,
  # which forms only when a majority of the master nodes is up.
  for n in $todo; do launch_node "$n" "$java"; done
  await_cluster "$list" "$t0"
}

# kill_strays N: node N's server when no pid file names it (a start that failed before the
# node wrote its pid file); found by its config dir on the command line.
kill_strays() {
  local pid
  for pid in $(pgrep -f -- "-Des.path.conf=$(node_dir "$1")/config( |$)" || true); do
    warn "stopping es-$1 pid $pid (no pid file)"
    echo "$pid" > "$(pidfile "$1").stray"
    stop_pidfile "$(pidfile "$1").stray" 30
  done
}

# stop [NODE]: TERM to every node at once, KILL what is left after 60 s.
stop() {
  local n list pids=() failed=0
  list="$(nodes "${1:-}")"
  setup_dirs
  for n in $list; do { stop_pidfile "$(pidfile "$n")" 60; kill_strays "$n"; } & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  ports_closed Elasticsearch $(for n in $list; do http_port "$n"; transport_port "$n"; done)
  [ $failed -eq 0 ] || die "some Elasticsearch node did not stop cleanly (see above)"
  say "stopped: $(echo "$list" | sed 's/^/es-/' | paste -sd' ')"
}

# --- status / logs ---------------------------------------------------------------------------

# status [NODE]: "NODE ADDRESS STATE DETAIL" per node; exit 0 only if all are healthy.
# Healthy: the node answers HTTPS as admin, has joined the cluster, and the cluster is green
# or yellow. DETAIL: pid, heap used of max, resident memory, the cluster's status.
status() {
  local n rc=0 pf addr health cat="" line list
  list="$(nodes "${1:-}")"
  setup_dirs
  load_secrets || true
  API_TIMEOUT=3
  for n in $list; do
    pf="$(pidfile "$n")"; addr="$HOST:$(http_port "$n")"
    if ! pid_alive "$pf"; then echo "es-$n $addr stopped -"; rc=3; continue; fi
    health=""; line=""
    if [ -n "${PASSWORD_ADMIN:-}" ] && health="$(cluster_health "$n")" && [ -n "$health" ]; then
      cat="$(api "$n" "/_cat/nodes?h=name,heap.current,heap.max" || true)"
      line="$(awk -v node="es-$n" '$1 == node {print $2 " of " $3}' <<< "$cat")"
    fi
    local rss; rss="$(ps -o rss= -p "$(cat "$pf")" | awk '{printf "%d MB", $1 / 1024}')"
    if [ -n "$line" ] && [[ "${health% *}" =~ ^(green|yellow)$ ]]; then
      echo "es-$n $addr healthy pid $(cat "$pf"), heap $line, rss $rss, cluster ${health% *} (${health#* } nodes)"
    elif [ -n "$health" ]; then
      echo "es-$n $addr unhealthy pid $(cat "$pf"), cluster ${health% *} (${health#* } nodes)${line:+, heap $line}"; rc=1
    else
      echo "es-$n $addr unhealthy pid $(cat "$pf"), no HTTPS answer as admin (starting, or not in a cluster)"; rc=1
    fi
  done
  return $rc
}

logs() {
  local node="" n=50 follow="" files=() i
  case "${1:-}" in ""|-*) ;; *) node="$1"; shift ;; esac
  while [ $# -gt 0 ]; do
    case "$1" in -n) n="$2"; shift 2 ;; -f) follow="-F"; shift ;; *) shift ;; esac
  done
  local list; list="$(nodes "$node")"
  setup_dirs
  for i in $list; do [ -e "$(logfile "$i")" ] && files+=("$(logfile "$i")"); done
  [ ${#files[@]} -gt 0 ] || die "no Elasticsearch log yet in $RT" "start the nodes first: $0 start"
  tail -n "$n" $follow "${files[@]}"
}

# urls: every node's HTTPS address, comma-separated.
urls() {
  local i out=""
  for ((i = 1; i <= ES_NODES; i++)); do out+="${out:+,}$(url "$i")"; done
  echo "$out"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  status) status "${2:-}" ;;
  logs) shift; logs "$@" ;;
  url) urls ;;
  *) echo "usage: $0 start|stop|status [NODE] | logs [NODE] [-n N] [-f] | url" >&2; exit 2 ;;
esac
