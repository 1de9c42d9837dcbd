#!/bin/sh
# Start Alertmanager with the case officers' webhook URL taken from the
# environment (see alertmanager.yml for why). Runs in the prom/alertmanager
# image (busybox sh and awk). The URL is substituted as plain text, so any
# character it holds (&, |, /) is safe.
set -eu
placeholder="http://case-officers-webhook.invalid/alertmanager"
src="${ALERTMANAGER_CONFIG:-/etc/alertmanager/alertmanager.yml}"
out="${ALERTMANAGER_RENDERED:-/alertmanager/config/alertmanager.yml}"

if [ -z "${CASE_OFFICERS_WEBHOOK_URL:-}" ]; then
  echo "render.sh: CASE_OFFICERS_WEBHOOK_URL is not set (the case officers' webhook)" >&2
  exit 1
fi

outdir="$(dirname "$out")"
mkdir -p "$outdir"
PLACEHOLDER="$placeholder" awk '
  {
    line = $0; p = ENVIRON["PLACEHOLDER"]; url = ENVIRON["CASE_OFFICERS_WEBHOOK_URL"]
    while ((i = index(line, p)) > 0) { printf "%s%s", substr(line, 1, i - 1), url; line = substr(line, i + length(p)) }
    print line
  }' "$src" > "$out"
# Alertmanager reads the config's template paths relative to the config file,
# so the templates go beside the rendered copy; a fresh copy each start, so a
# template removed from the source does not live on.
rm -rf "$outdir/templates"
cp -R "$(dirname "$src")/templates" "$outdir/templates"

[ "${RENDER_ONLY:-0}" = 1 ] && exit 0
exec /bin/alertmanager --config.file="$out" --storage.path=/alertmanager "$@"
