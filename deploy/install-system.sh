#!/usr/bin/env bash
# Installs the Debian packages the local stack and the tests need, once.
# Idempotent: does nothing when everything is present.
set -euo pipefail
# redis-server: the verdict cache; maven+openjdk-17: Kafka from Maven Central jars; unzip, curl,
# iproute2 (ss), util-linux (flock, setsid, runuser): the deploy/ scripts.
PKGS=(redis-server dnsperf bind9-utils chromium maven openjdk-17-jre-headless unzip curl iproute2 util-linux)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts redis-server as a system service on install; the stack runs its own instance.
$SUDO systemctl disable --now redis-server >/dev/null 2>&1 || $SUDO service redis-server stop >/dev/null 2>&1 || true
