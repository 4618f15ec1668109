#!/usr/bin/env bash
# The cluster profile on one machine: three "hosts" on loopback (deploy/multi/cluster.env), every
# data service with TLS and a user per component, then the product's processes.
# Usage: cluster.sh up|down|status [SERVICE...]     cluster.sh logs SERVICE [NODE] [-n N] [-f]
#        cluster.sh settings                        (re-render $DS_CLUSTER_DIR/dnsentinel.toml)
# `dnsentinel stack up|down|status|logs --profile cluster` runs this (dnsentinel.cli.cluster.profile).
#
# up: pki.sh (CA, node certificates, secrets), the settings file of the product's processes, then
# each service's deploy/cluster/<service>.sh start in SERVICES order, each followed by its setup
# step where it has one (Kafka: topics and ACLs). down: the reverse order. A service whose script
# does not exist yet is skipped with a warning.
set -euo pipefail
SERVICE=cluster
source "$(dirname "$0")/lib.sh"
source "$DEPLOY_DIR/multi/cluster.env"

CLUSTER_DIR="${DS_CLUSTER_DIR:-$DS_STATE_DIR/cluster}"
export DS_CLUSTER_DIR="$CLUSTER_DIR"
PY="${DS_PYTHON:-$REPO_DIR/.venv/bin/python}"
KEY_PREFIX="${DS_REDIS_KEY_PREFIX:-dnsentinel}"

# Start order. Data services first (each waits for its own health), then the product's
# processes, which need all of them: coredns (plugin: Redis + Kafka), apps (workers, dashboard).
SERVICES=(redis kafka elasticsearch coredns apps)

script_of() { echo "$DEPLOY_DIR/cluster/$1.sh"; }

known() {
  local s; for s in "${SERVICES[@]}"; do [ "$s" = "$1" ] && return 0; done
  die "unknown service $1" "pick one of: ${SERVICES[*]}"
}

# post_start SERVICE: what needs a client once the nodes are up (idempotent).
post_start() {
  case "$1" in
    kafka) "$PY" -m dnsentinel.cli.cluster.kafka setup ;;
    elasticsearch) "$PY" -m dnsentinel.cli.cluster.es check && "$PY" -m dnsentinel.cli.cluster.es seed-models ;;
  esac
}

# The settings file every product process reads (DNSENTINEL_CONFIG); identities come from the environment.
write_settings() {
  local PKI="$CLUSTER_DIR/pki" KAFKA_BOOTSTRAP="" ES_URLS="" SENTINELS="" i
  for ((i = 0; i < KAFKA_NODES; i++)); do KAFKA_BOOTSTRAP+="${KAFKA_BOOTSTRAP:+,}$CLUSTER_HOST:$((KAFKA_CLIENT_PORT + i))"; done
  for ((i = 0; i < ES_NODES; i++)); do ES_URLS+="${ES_URLS:+,}https://$CLUSTER_HOST:$((ES_HTTP_PORT + i))"; done
  for ((i = 0; i < SENTINEL_NODES; i++)); do SENTINELS+="${SENTINELS:+, }\"$CLUSTER_HOST:$((SENTINEL_PORT + i))\""; done
  render "$DEPLOY_DIR/multi/dnsentinel.toml.tmpl" > "$CLUSTER_DIR/dnsentinel.toml.tmp"
  mv "$CLUSTER_DIR/dnsentinel.toml.tmp" "$CLUSTER_DIR/dnsentinel.toml"
}

up() {
  local services=("$@") s t0 start_all=$SECONDS
  [ ${#services[@]} -gt 0 ] || services=("${SERVICES[@]}")
  for s in "${services[@]}"; do known "$s"; done
  "$DEPLOY_DIR/multi/pki.sh" "$CLUSTER_DIR"
  write_settings
  for s in "${SERVICES[@]}"; do
    [[ " ${services[*]} " == *" $s "* ]] || continue
    if [ ! -x "$(script_of "$s")" ]; then warn "warning: no $(script_of "$s") yet; skipping $s"; continue; fi
    t0=$SECONDS
    "$(script_of "$s")" start || die "$s did not start" "see: dnsentinel stack logs $s --profile cluster"
    post_start "$s" || die "$s started but its setup failed" "fix what the line above says, then run up again"
    say "$s up in $((SECONDS - t0))s"
  done
  say "up in $((SECONDS - start_all))s; settings for the product's processes: $CLUSTER_DIR/dnsentinel.toml"
}

down() {
  local services=("$@") s i rc=0
  [ ${#services[@]} -gt 0 ] || services=("${SERVICES[@]}")
  for s in "${services[@]}"; do known "$s"; done
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    s="${SERVICES[$i]}"
    [[ " ${services[*]} " == *" $s "* ]] || continue
    [ -x "$(script_of "$s")" ] || continue
    "$(script_of "$s")" stop || rc=1
  done
  return $rc
}

# status: each service's node lines prefixed with the service ("SERVICE NODE ADDRESS STATE DETAIL").
status() {
  local services=("$@") s rc=0
  [ ${#services[@]} -gt 0 ] || services=("${SERVICES[@]}")
  for s in "${services[@]}"; do
    known "$s"
    if [ ! -x "$(script_of "$s")" ]; then echo "$s - - missing no deploy/cluster/$s.sh yet"; continue; fi
    "$(script_of "$s")" status | sed "s/^/$s /" || rc=1
  done
  return $rc
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) shift; down "$@" ;;
  status) shift; status "$@" ;;
  logs) shift; s="${1:-}"; [ -n "$s" ] || die "logs needs a service" "pick one of: ${SERVICES[*]}"
        known "$s"; shift; exec "$(script_of "$s")" logs "$@" ;;
  settings) mkdir -p "$CLUSTER_DIR"; write_settings; echo "$CLUSTER_DIR/dnsentinel.toml" ;;
  *) echo "usage: $0 up|down|status [SERVICE...] | logs SERVICE [NODE] [-n N] [-f] | settings" >&2; exit 2 ;;
esac
