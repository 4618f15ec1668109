# Shared helpers of the deploy/ service scripts (sourced, not run).
#
# Every knob comes from a DS_* environment variable; `dnsentinel stack` derives
# them from the settings model (dnsentinel.settings), and the defaults below
# mirror the settings' defaults so a script also runs on its own.
# shellcheck shell=bash

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$DEPLOY_DIR/.." && pwd)"
# shellcheck source=versions.env
source "$DEPLOY_DIR/versions.env"

DS_STATE_DIR="${DS_STATE_DIR:-$REPO_DIR/.state}"
DS_START_TIMEOUT="${DS_START_TIMEOUT:-600}"
CACHE_DIR="${DS_CACHE_DIR:-$DS_STATE_DIR/cache}"
M2_REPO="$CACHE_DIR/m2"

say() { printf '%s: %s\n' "$SERVICE" "$*"; }
warn() { printf '%s: %s\n' "$SERVICE" "$*" >&2; }

# die MESSAGE [HINT]: one line saying what failed, one saying what to do.
die() {
  printf '%s: error: %s\n' "$SERVICE" "$1" >&2
  [ -n "${2:-}" ] && printf '%s: hint: %s\n' "$SERVICE" "$2" >&2
  exit 1
}

# fail_with_log LOGFILE MESSAGE [HINT]: like die, after the log's last lines.
fail_with_log() {
  local log="$1"; shift
  if [ -s "$log" ]; then
    printf '%s: last lines of %s:\n' "$SERVICE" "$log" >&2
    tail -n 25 "$log" | sed "s/^/    /" >&2
  fi
  die "$@"
}

# port_open HOST PORT: something accepts TCP connections there.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# port_owner PORT: "command(pid)" of the process listening on the TCP port, if any.
port_owner() {
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n1 \
    | sed -E 's/users:\(\("([^"]*)",pid=([0-9]*)/\1(pid \2)/' || true
}

# udp_owner PORT: same for a UDP port (CoreDNS).
udp_owner() {
  ss -Hlunp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n1 \
    | sed -E 's/users:\(\("([^"]*)",pid=([0-9]*)/\1(pid \2)/' || true
}

# check_port_free PORT WHAT: refuse to start when a foreign process holds the port.
check_port_free() {
  local owner
  owner="$(port_owner "$1")"
  if [ -n "$owner" ] || port_open 127.0.0.1 "$1"; then
    die "port $1 ($2) is already used by ${owner:-another process}" \
      "stop that process, or pick another port in the settings (dnsentinel.toml or DNSENTINEL_* variables)"
  fi
}

# adopted PIDFILE: no process of this state dir runs, yet the port already answers as
# this service (`serves`, defined by each script): another checkout's stack, e.g. a
# developer's shared stack still up when CI runs on the same machine. It is used, and
# left alone by `stop`; anything else on the port is refused by check_port_free.
adopted() { ! pid_alive "$1" && serves; }

# pid_alive PIDFILE: the pid recorded there is a live process.
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# spawn PIDFILE LOG CMD...: run CMD detached (own session, immune to the caller's
# Ctrl-C) with output appended to LOG; the pid file names CMD's own process even
# when setsid has to fork.
spawn() {
  local pidfile="$1" log="$2"; shift 2
  rm -f "$pidfile"
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >> "$log" 2>&1 < /dev/null &
  local i
  for ((i = 0; i < 50; i++)); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
  die "could not start $1" "see $log"
}

# stop_pidfile PIDFILE [GRACE_S]: TERM, wait, then KILL; removes the pid file.
stop_pidfile() {
  local pidfile="$1" grace="${2:-30}" pid i
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "pid $pid did not stop within ${grace}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
}

# wait_port_closed PORT [TIMEOUT_S]: the port is no longer listened on.
wait_port_closed() {
  local i
  for ((i = 0; i < ${2:-10} * 10; i++)); do
    [ -z "$(port_owner "$1")" ] && return 0
    sleep 0.1
  done
  return 1
}

# java_bin JAVA_HOME_OR_EMPTY MIN_MAJOR WHAT: the java executable, checked.
java_bin() {
  local home="$1" min="$2" what="$3" java major
  if [ -n "$home" ]; then
    java="$home/bin/java"
    [ -x "$java" ] || die "no java at $java (for $what)" "set DNSENTINEL_STACK__JAVA_HOME / ES_JAVA_HOME to a JDK $min+ directory"
  else
    java="$(command -v java || true)"
    [ -n "$java" ] || die "no java on PATH (for $what)" "install a JDK $min+ (apt-get install openjdk-17-jre-headless) or set DNSENTINEL_STACK__JAVA_HOME"
  fi
  major="$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' | cut -d. -f1)"
  if [ -z "$major" ] || [ "$major" -lt "$min" ]; then
    die "$java is Java ${major:-?}; $what needs Java $min+" "point the settings at a JDK $min+ (ls /usr/lib/jvm)"
  fi
  printf '%s\n' "$java"
}

# mvn_quiet ARGS...: Maven with the cache under the state dir; quiet, but a progress line
# every 15 s. One Maven at a time per cache (its local repository has no locking).
mvn_quiet() {
  command -v mvn >/dev/null || die "mvn (Maven) is not installed" "apt-get install maven"
  mkdir -p "$M2_REPO"
  local mlog="$CACHE_DIR/mvn-$SERVICE.log"
  flock "$M2_REPO/.lock" mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$M2_REPO" "$@" > "$mlog" 2>&1 &
  local pid=$! t=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    t=$((t + 1))
    [ $((t % 15)) -eq 0 ] && say "... still fetching (${t}s, $(du -sm "$M2_REPO" | cut -f1) MB in $M2_REPO)"
  done
  wait "$pid" || { sed 's/\x1b\[[0-9;]*m//g' "$mlog" | grep -m 4 '\[ERROR\]' >&2; return 1; }
}

# show_logs LOGFILE ARGS: `logs [-n N] [-f]` for a single log file.
show_logs() {
  local log="$1"; shift
  local n=50 follow=""
  while [ $# -gt 0 ]; do
    case "$1" in
      -n) n="$2"; shift 2 ;;
      -f) follow="-F"; shift ;;
      *) shift ;;
    esac
  done
  [ -e "$log" ] || die "no log yet at $log" "start the service first: dnsentinel stack up"
  tail -n "$n" $follow "$log"
}

# render TEMPLATE: prints the template with every @NAME@ replaced by $NAME.
render() {
  local text name
  text="$(cat "$1")"
  for name in $(grep -o '@[A-Z_][A-Z0-9_]*@' "$1" | sort -u | tr -d '@'); do
    text="${text//@$name@/${!name}}"
  done
  printf '%s\n' "$text"
}

# --- Kafka: shared by deploy/services/kafka.sh (one node) and deploy/cluster/kafka.sh (three) ---

# The broker's classpath: Maven Central jars fetched once by `services/kafka.sh fetch`.
KAFKA_LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"

# kafka_jvm_opts HEAP: sets the array KAFKA_JOPTS (Kafka's own G1 settings, log4j2 to stdout).
kafka_jvm_opts() {
  KAFKA_JOPTS=(-Xms"$1" -Xmx"$1" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$DEPLOY_DIR/kafka/log4j2.properties"
    -cp "$KAFKA_LIBS/*")
}

# kafka_cluster_id: a new cluster id (16 random bytes, URL-safe base64 without padding, not
# starting with "-", which the storage tool would read as an option).
kafka_cluster_id() {
  local cid
  cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  while [ "${cid:0:1}" = "-" ]; do cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; done
  printf '%s\n' "$cid"
}

# await_healthy PIDFILE LOG WHAT CMD...: poll CMD until it succeeds; fail with the log's last
# lines when the process of PIDFILE dies first or DS_START_TIMEOUT passes.
await_healthy() {
  local pidfile="$1" log="$2" what="$3"; shift 3
  local deadline=$((SECONDS + ${DS_START_TIMEOUT%.*}))
  until "$@"; do
    pid_alive "$pidfile" || fail_with_log "$log" "$what exited during start-up" "see $log"
    [ $SECONDS -lt $deadline ] || fail_with_log "$log" "$what not healthy within ${DS_START_TIMEOUT}s" "see $log"
    sleep 0.3
  done
}

# --- Elasticsearch: shared by deploy/services/elasticsearch.sh (one node) and deploy/cluster/elasticsearch.sh ---
# ES refuses to run as root: as root its nodes run as the system user ES_USER.

ES_USER="${DS_ES_USER:-dnsentinel-es}"
ES_ZIP="$M2_REPO/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ELASTICSEARCH_VERSION/elasticsearch-$ELASTICSEARCH_VERSION.zip"

# as_es CMD...: CMD as ES_USER when root, else as ourselves.
as_es() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$ES_USER" -- "$@"; else "$@"; fi; }

# es_ensure_user: create ES_USER when running as root and it does not exist.
es_ensure_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  id "$ES_USER" >/dev/null 2>&1 && return 0
  say "creating system user $ES_USER (Elasticsearch refuses to run as root)"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$ES_USER" \
    || die "could not create user $ES_USER" "create it by hand (useradd --system $ES_USER) or run as a non-root user"
}

# es_runtime_dir LINK: where a node's home/data/logs live, reachable by ES_USER: LINK itself
# when ES_USER can reach its parent, else /var/lib/dnsentinel/es-<hash of LINK> (linked from LINK).
es_runtime_dir() {
  local link="$1" parent
  parent="$(dirname "$link")"
  if [ -L "$link" ]; then readlink -f "$link"; return; fi
  if [ -d "$link" ]; then echo "$link"; return; fi
  mkdir -p "$parent"
  if [ "$(id -u)" -ne 0 ] || runuser -u "$ES_USER" -- test -x "$parent"; then
    echo "$link"
  elif [ "$(basename "$link")" = elasticsearch ] && [ "$parent" -ef "$DS_STATE_DIR" ]; then
    # The single node's historical location (kept so an existing node keeps its data).
    echo "/var/lib/dnsentinel/es-$(printf '%s' "$(readlink -f "$DS_STATE_DIR")" | sha1sum | cut -c1-10)"
  else
    echo "/var/lib/dnsentinel/es-$(printf '%s' "$(readlink -f "$parent")/$(basename "$link")" | sha1sum | cut -c1-10)"
  fi
}

# es_fetch: the integ-test zip (x-pack-core and x-pack-security included) from Maven Central, once.
es_fetch() {
  [ -f "$ES_ZIP" ] && return 0
  say "fetching Elasticsearch $ELASTICSEARCH_VERSION (integ-test-zip, ~130 MB) from Maven Central (once)..."
  mvn_quiet dependency:get -Dtransitive=false \
    -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ELASTICSEARCH_VERSION:zip" \
    || die "could not fetch the Elasticsearch zip" "check that Maven Central is reachable (mvn -v)"
  [ -f "$ES_ZIP" ] || die "$ES_ZIP missing after fetch" "rm -rf $M2_REPO/org/elasticsearch and retry"
}

# es_unpack DIR: DIR/elasticsearch-$ELASTICSEARCH_VERSION, unpacked once (fetched first if needed).
es_unpack() {
  local home="$1/elasticsearch-$ELASTICSEARCH_VERSION"
  [ -f "$home/.complete" ] && return 0
  es_fetch
  say "unpacking Elasticsearch $ELASTICSEARCH_VERSION into $1"
  rm -rf "$home"
  unzip -q "$ES_ZIP" -d "$1" || die "could not unpack $ES_ZIP" "remove it and retry (a partial download?)"
  touch "$home/.complete"
}

# es_java: the java of a JDK 21+, checked; ES_USER must read it. DS_ES_JAVA_HOME when set (as
# `dnsentinel stack` sets it), else the newest JDK 21+ in /usr/lib/jvm, else the java on PATH.
es_java() {
  local java home="${DS_ES_JAVA_HOME:-}"
  [ -n "$home" ] || home="$(jdk_home 21)"
  java="$(java_bin "$home" 21 "Elasticsearch $ELASTICSEARCH_VERSION")"
  as_es test -r "$java" || die "$ES_USER cannot read $java" "use a JDK outside /root (DNSENTINEL_STACK__ES_JAVA_HOME)"
  printf '%s\n' "$java"
}

# jdk_home MIN_MAJOR: the newest JDK home of at least that major version in /usr/lib/jvm (its
# `release` file says), or nothing.
jdk_home() {
  local rel major best="" best_major=0
  for rel in /usr/lib/jvm/*/release; do
    [ -f "$rel" ] && [ ! -L "$(dirname "$rel")" ] && [ -x "$(dirname "$rel")/bin/java" ] || continue
    major="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$rel")"
    [ -n "$major" ] && [ "$major" -ge "$1" ] && [ "$major" -gt "$best_major" ] || continue
    best="$(dirname "$rel")" best_major="$major"
  done
  printf '%s\n' "$best"
}

# es_dirs LINK [create]: sets RT (the runtime dir LINK points to, reachable by ES_USER) and ES_HOME;
# only `start` (create) makes the user, the dir and the link.
es_dirs() {
  local link="$1"
  if [ "${2:-}" = create ]; then
    es_ensure_user
    RT="$(es_runtime_dir "$link")"
    mkdir -p "$RT"
    if [ "$RT" != "$link" ] && [ ! -e "$link" ]; then ln -s "$RT" "$link"; fi
  elif [ -e "$link" ]; then
    RT="$(readlink -f "$link")"
  else
    RT="$link"
  fi
  ES_HOME="$RT/elasticsearch-$ELASTICSEARCH_VERSION"
}

# ports_closed WHAT PORT...: wait (10 s each) until no process listens on the ports; die naming
# the stragglers otherwise (a node that "stopped" but still holds a port would break the next start).
ports_closed() {
  local what="$1" p failed=0; shift
  for p in "$@"; do
    wait_port_closed "$p" 10 || { warn "port $p still listened on by $(port_owner "$p")"; failed=1; }
  done
  [ $failed -eq 0 ] || die "some $what node did not stop cleanly (see above)"
}
