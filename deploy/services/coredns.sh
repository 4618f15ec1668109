#!/usr/bin/env bash
# CoreDNS built from coredns-plugin/ (our plugin compiled in), one binary.
# Usage: coredns.sh start|stop|status|logs [-n N] [-f]|fetch|build|version|corefile [stack|plain]
set -euo pipefail
SERVICE=coredns
source "$(dirname "$0")/../lib.sh"

HOST="${DS_COREDNS_HOST:-127.0.0.1}"
PORT="${DS_COREDNS_PORT:-1053}"
METRICS_PORT="${DS_COREDNS_METRICS_PORT:-9153}"
HEALTH_PORT="${DS_COREDNS_HEALTH_PORT:-8080}"
READY_PORT="${DS_COREDNS_READY_PORT:-8181}"
UPSTREAM="${DS_COREDNS_UPSTREAM:-}"
SRC="$REPO_DIR/coredns-plugin"
BIN="$DS_STATE_DIR/bin/coredns"
DIR="$DS_STATE_DIR/coredns"
PIDFILE="$DIR/coredns.pid"
LOG="$DIR/logs/coredns.log"
CONF="$DIR/Corefile"

have_main() { compgen -G "$SRC/cmd/coredns/*.go" >/dev/null; }

# The build is redone only when a Go source, go.mod or go.sum changed.
src_hash() {
  (cd "$SRC" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16
}

build() {
  have_main || die "not built yet: coredns-plugin/cmd/coredns has no main package" "the Go component builds it; until then the stack runs without CoreDNS"
  command -v go >/dev/null || die "go is not installed" "install Go 1.25+ (CoreDNS needs it)"
  local want; want="$(src_hash)"
  if [ -x "$BIN" ] && [ "$(cat "$BIN.srchash" 2>/dev/null)" = "$want" ]; then return 0; fi
  say "building CoreDNS with the dnsentinel plugin (Go sources changed; the first build downloads Go modules, a few minutes)..."
  mkdir -p "$(dirname "$BIN")" "$DIR/logs"
  (cd "$SRC" && go build -o "$BIN.new" ./cmd/coredns) > "$DIR/logs/build.log" 2>&1 \
    || fail_with_log "$DIR/logs/build.log" "go build of coredns-plugin/cmd/coredns failed" "see $DIR/logs/build.log"
  mv "$BIN.new" "$BIN"
  echo "$want" > "$BIN.srchash"
  say "built $BIN"
}

# corefile [stack|plain]: the rendered Corefile on stdout.
corefile() {
  local kind="${1:-stack}" RESOLVER_BLOCK PLUGIN_BLOCK
  if [ -n "$UPSTREAM" ]; then
    RESOLVER_BLOCK="$(render "$DEPLOY_DIR/coredns/resolver-forward.tmpl")"
  else
    RESOLVER_BLOCK="$(render "$DEPLOY_DIR/coredns/resolver-template.tmpl")"
  fi
  PLUGIN_BLOCK="$(printf '        %s\n' \
    "redis ${DS_COREDNS_REDIS_ADDR:-127.0.0.1:6379}" \
    "kafka ${DS_COREDNS_KAFKA_BROKERS:-127.0.0.1:9092}" \
    "topic ${DS_COREDNS_QUERIES_TOPIC:-dns.queries}" \
    "redis_db ${DS_COREDNS_REDIS_DB:-0}" \
    "redis_prefix ${DS_COREDNS_KEY_PREFIX:-dnsentinel}" \
    "server_id ${DS_COREDNS_SERVER_ID:-coredns-local}")"
  case "$kind" in
    stack) render "$DEPLOY_DIR/coredns/Corefile.tmpl" ;;
    plain) render "$DEPLOY_DIR/coredns/Corefile.plain.tmpl" ;;
    *) die "unknown Corefile kind $kind" "use stack or plain" ;;
  esac
}

serves() { healthy && udp_owner "$PORT" | grep -q '^coredns'; }
healthy() { curl -fsS --max-time 2 "http://$HOST:$READY_PORT/ready" >/dev/null 2>&1; }

start() {
  if ! have_main; then say "not built yet (coredns-plugin/cmd/coredns missing); skipped"; return 0; fi
  if adopted "$PIDFILE"; then say "$HOST:$PORT is already served by $(udp_owner "$PORT"), not from this state dir; using it"; return 0; fi
  if ! (build); then
    # A teammate's half-edited Go source must not take down a working resolver.
    if pid_alive "$PIDFILE" && healthy; then warn "build failed; keeping the running binary"; return 0; fi
    exit 1
  fi
  if pid_alive "$PIDFILE" && healthy; then
    if [ "$(cat "$DIR/binary.srchash" 2>/dev/null)" = "$(cat "$BIN.srchash")" ]; then
      say "already running on $HOST:$PORT"; return 0
    fi
    say "binary rebuilt since start; restarting"
  fi
  stop_pidfile "$PIDFILE" 10
  local owner
  owner="$(udp_owner "$PORT")"
  [ -z "$owner" ] || die "UDP port $PORT (CoreDNS, DNSENTINEL_COREDNS__PORT) is already used by $owner" "stop it or pick another port"
  check_port_free "$PORT" "CoreDNS TCP, DNSENTINEL_COREDNS__PORT"
  check_port_free "$HEALTH_PORT" "CoreDNS health, DNSENTINEL_COREDNS__HEALTH_PORT"
  check_port_free "$READY_PORT" "CoreDNS ready, DNSENTINEL_COREDNS__READY_PORT"
  check_port_free "$METRICS_PORT" "CoreDNS metrics, DNSENTINEL_COREDNS__METRICS_PORT"
  mkdir -p "$DIR/logs"
  corefile stack > "$CONF"
  : > "$LOG"
  (cd "$DIR" && spawn "$PIDFILE" "$LOG" "$BIN" -conf "$CONF")
  cp "$BIN.srchash" "$DIR/binary.srchash"
  await_healthy "$PIDFILE" "$LOG" "CoreDNS (Corefile $CONF, ready on $HOST:$READY_PORT)" healthy
  say "healthy on $HOST:$PORT (udp+tcp)"
}

stop() {
  if adopted "$PIDFILE"; then say "left running: $(udp_owner "$PORT") was not started from this state dir"; return 0; fi
  stop_pidfile "$PIDFILE" 15
  local p
  for p in "$PORT" "$HEALTH_PORT" "$READY_PORT" "$METRICS_PORT"; do
    wait_port_closed "$p" 10 || die "port $p still listened on by $(port_owner "$p")"
  done
  say "stopped"
}

status() {
  if ! have_main; then echo "not-built coredns-plugin/cmd/coredns missing"; return 4; fi
  if adopted "$PIDFILE"; then echo "healthy external $(udp_owner "$PORT")"; return 0; fi
  if ! pid_alive "$PIDFILE"; then echo "stopped"; return 3; fi
  if healthy; then echo "healthy pid $(cat "$PIDFILE")"; return 0; fi
  echo "unhealthy pid $(cat "$PIDFILE"), not ready on $HOST:$READY_PORT"; return 1
}

version() {
  if [ -x "$BIN" ]; then "$BIN" -version 2>/dev/null | sed -nE 's/^CoreDNS-([0-9.]+).*/\1/p' | head -n1; else echo "$COREDNS_VERSION"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) shift; show_logs "$LOG" "$@" ;;
  fetch) if [ -x "$BIN" ] && [ "$(cat "$BIN.srchash" 2>/dev/null)" = "$(src_hash 2>/dev/null)" ]; then :
    elif [ -f "$SRC/go.mod" ] && command -v go >/dev/null; then (cd "$SRC" && go mod download) || warn "go mod download failed; the build will retry"; fi ;;
  build) if have_main; then build; else say "not built yet (coredns-plugin/cmd/coredns missing)"; fi ;;
  version) version ;;
  corefile) shift; corefile "$@" ;;
  *) echo "usage: $0 start|stop|status|logs [-n N] [-f]|fetch|build|version|corefile [stack|plain]" >&2; exit 2 ;;
esac
