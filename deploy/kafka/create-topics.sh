#!/usr/bin/env bash
# Create the topics of topics.yaml (idempotent: --if-not-exists), then list them.
# Used by the compose `kafka-init` service with the apache/kafka image.
#
# Environment:
#   BOOTSTRAP_SERVERS   broker to talk to (default kafka:9092)
#   TOPICS_FILE         topic definitions (default: topics.yaml beside this script)
#   REPLICATION_FACTOR  overrides every topic's replication (e.g. 3 on a cluster)
#   KAFKA_TOPICS        the kafka-topics.sh command (default /opt/kafka/bin/kafka-topics.sh)
#   COMMAND_CONFIG      a client properties file (security.protocol, sasl.*, ssl.*) for a
#                       broker that requires TLS or SASL; passed as --command-config
#   DRY_RUN=1           print the commands instead of running them (used by the tests)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bootstrap="${BOOTSTRAP_SERVERS:-kafka:9092}"
topics_file="${TOPICS_FILE:-$here/topics.yaml}"
kafka_topics="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"
security=()
if [[ -n "${COMMAND_CONFIG:-}" ]]; then security=(--command-config "$COMMAND_CONFIG"); fi

# One line per topic: name partitions replication [key=value ...].
# Handles only the flat layout of topics.yaml (no YAML parser in the image).
parse() {
  awk '
    function unquote(v) { sub(/[ \t]+#.*$/, "", v); gsub(/^[ \t]+|[ \t]+$/, "", v); gsub(/^"|"$/, "", v); return v }
    function flush() { if (name != "") print name, parts, repl, cfg; name = ""; cfg = "" }
    /^[ \t]*#/ || /^[ \t]*$/ { next }
    /^[ \t]*- name:/ { flush(); v = $0; sub(/^[ \t]*- name:/, "", v); name = unquote(v); inconf = 0; next }
    /^[ \t]*partitions:/ { v = $0; sub(/^[ \t]*partitions:/, "", v); parts = unquote(v); next }
    /^[ \t]*replication:/ { v = $0; sub(/^[ \t]*replication:/, "", v); repl = unquote(v); next }
    /^[ \t]*configs:/ { inconf = 1; next }
    inconf && /^[ \t]+[A-Za-z0-9._-]+:/ {
      line = $0; sub(/^[ \t]+/, "", line); k = line; sub(/:.*$/, "", k)
      v = line; sub(/^[^:]*:/, "", v)
      cfg = cfg (cfg == "" ? "" : " ") k "=" unquote(v); next
    }
    END { flush() }
  ' "$topics_file"
}

run() {
  if [[ "${DRY_RUN:-0}" == 1 ]]; then echo "$*"; else "$@"; fi
}

count=0
while read -r name partitions replication configs; do
  args=(--bootstrap-server "$bootstrap" "${security[@]}" --create --if-not-exists --topic "$name"
        --partitions "$partitions" --replication-factor "${REPLICATION_FACTOR:-$replication}")
  for kv in $configs; do args+=(--config "$kv"); done
  run "$kafka_topics" "${args[@]}"
  count=$((count + 1))
done < <(parse)

if [[ "$count" -eq 0 ]]; then
  echo "create-topics: no topics found in $topics_file" >&2
  exit 1
fi
run "$kafka_topics" --bootstrap-server "$bootstrap" "${security[@]}" --describe --topics-with-overrides
