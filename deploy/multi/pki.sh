#!/usr/bin/env bash
# The cluster's local CA, per-node certificates and per-principal secrets.
# Usage: pki.sh DIR            (idempotent: keeps what exists, adds what is missing)
#        pki.sh DIR expiry     (prints "NAME NOT_AFTER_EPOCH" per certificate)
# Real host names: every certificate names its node, localhost and CLUSTER_HOST. A node reached
# under other names or addresses gets them from PKI_SANS_<NODE> (upper case, "-" as "_"), a
# comma-separated list in openssl's syntax, e.g.
#   PKI_SANS_KAFKA_1="DNS:kafka1.dns.example,IP:10.0.1.11" deploy/multi/pki.sh /etc/dnsentinel
# A certificate whose extra SANs changed is issued again (the old one is replaced).
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

# extra_sans NODE: the node's PKI_SANS_<NODE> (empty by default).
extra_sans() { local var="PKI_SANS_$(echo "$1" | tr 'a-z-' 'A-Z_')"; printf '%s' "${!var:-}"; }

for n in "${NODES[@]}"; do
  extra="$(extra_sans "$n")"
  # NODE.sans records the extra SANs a certificate was issued with (no file: none).
  [ -s "$PKI/$n.crt" ] && [ "$extra" = "$(cat "$PKI/$n.sans" 2>/dev/null)" ] && continue
  [ -s "$PKI/$n.crt" ] && say "$n: extra SANs changed to '${extra}'; issuing its certificate again"
  # into NODE.new.*, moved in place only once issued: a failure leaves the old pair intact
  (umask 077; openssl req -newkey rsa:2048 -nodes -subj "/CN=$n" -keyout "$PKI/$n.new.key" -out "$PKI/$n.csr" 2>/dev/null)
  openssl x509 -req -in "$PKI/$n.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days "$CERT_DAYS" -out "$PKI/$n.new.crt" -extfile <(printf '%s\n' \
      "subjectAltName=DNS:$n,DNS:localhost,IP:$CLUSTER_HOST${extra:+,$extra}" \
      "extendedKeyUsage=serverAuth,clientAuth" "keyUsage=critical,digitalSignature,keyEncipherment") 2>/dev/null \
    || { rm -f "$PKI/$n.csr" "$PKI/$n.new.key" "$PKI/$n.new.crt"
         die "$n: openssl could not issue the certificate" "check PKI_SANS_$(echo "$n" | tr 'a-z-' 'A-Z_')='$extra' (e.g. DNS:host.example,IP:10.0.0.1)"; }
  rm -f "$PKI/$n.csr"
  mv "$PKI/$n.new.key" "$PKI/$n.key"; mv "$PKI/$n.new.crt" "$PKI/$n.crt"
  if [ -n "$extra" ]; then printf '%s\n' "$extra" > "$PKI/$n.sans"; else rm -f "$PKI/$n.sans"; fi
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
