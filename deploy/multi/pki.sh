#!/usr/bin/env bash
# The cluster's local CA, per-node certificates and per-principal secrets.
# Usage: pki.sh DIR            (idempotent: keeps what exists, adds what is missing)
#        pki.sh DIR expiry     (prints "NAME NOT_AFTER_EPOCH" per certificate)
# Layout: DIR/pki/ca.{crt,key}; DIR/pki/NAME.{crt,key} (PEM, key unencrypted, 0600);
#         DIR/pki/NAME.keystore.pem (key + chain, for Kafka's PEM keystore);
#         DIR/secrets.env (one random password per principal, 0600).
set -euo pipefail
SERVICE=pki
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/cluster.env"
DIR="${1:?usage: pki.sh DIR [expiry]}"
PKI="$DIR/pki"
mkdir -p "$PKI"; chmod 700 "$PKI"

# Every TLS endpoint of the profile; the loopback host name and address are in every SAN.
NODES=()
for ((i = 1; i <= KAFKA_NODES; i++)); do NODES+=("kafka-$i"); done
for ((i = 1; i <= ES_NODES; i++)); do NODES+=("es-$i"); done
NODES+=(redis-primary redis-replica)
for ((i = 1; i <= SENTINEL_NODES; i++)); do NODES+=("sentinel-$i"); done
# Principals (a password each; Kafka SCRAM users, ES file-realm users, Redis ACL users).
PRINCIPALS=(admin coredns worker replay dashboard replication sentinel)

if [ "${2:-}" = expiry ]; then
  for f in "$PKI"/*.crt; do
    [ -e "$f" ] || continue
    end="$(openssl x509 -in "$f" -noout -enddate | cut -d= -f2)"
    printf '%s %s\n' "$(basename "$f" .crt)" "$(date -d "$end" +%s)"
  done
  exit 0
fi

if [ ! -s "$PKI/ca.crt" ]; then
  say "creating the cluster CA in $PKI"
  openssl req -x509 -newkey rsa:3072 -nodes -days "$CERT_DAYS" -subj "/CN=dnsentinel cluster CA" \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 600 "$PKI/ca.key"
fi

for n in "${NODES[@]}"; do
  [ -s "$PKI/$n.crt" ] && continue
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$n" -keyout "$PKI/$n.key" -out "$PKI/$n.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$n.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days "$CERT_DAYS" -out "$PKI/$n.crt" -extfile <(printf '%s\n' \
      "subjectAltName=DNS:$n,DNS:localhost,IP:$CLUSTER_HOST" \
      "extendedKeyUsage=serverAuth,clientAuth" "keyUsage=critical,digitalSignature,keyEncipherment") 2>/dev/null
  rm -f "$PKI/$n.csr"
  cat "$PKI/$n.key" "$PKI/$n.crt" "$PKI/ca.crt" > "$PKI/$n.keystore.pem"
  chmod 600 "$PKI/$n.key" "$PKI/$n.keystore.pem"
done

SECRETS="$DIR/secrets.env"
touch "$SECRETS"; chmod 600 "$SECRETS"
for p in "${PRINCIPALS[@]}"; do
  var="PASSWORD_$(echo "$p" | tr a-z A-Z)"
  grep -q "^$var=" "$SECRETS" || printf '%s=%s\n' "$var" "$(openssl rand -hex 16)" >> "$SECRETS"
done
say "CA, ${#NODES[@]} node certificates and ${#PRINCIPALS[@]} principals' secrets in $DIR"
