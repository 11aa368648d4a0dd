#!/usr/bin/env bash
# Run the pinned wrangler (package.json) with the pinned Node 22 binary from node_modules, so it
# works where the system node is older (wrangler 4 needs Node >= 22). Falls back to a system
# `node` only if it is new enough (e.g. on darwin-arm64, which has no node-* 22 package).
# Install first with `make node_modules/.stamp` (npm ci). Usage: scripts/wrangler.sh <wrangler args>
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JS="$ROOT/node_modules/wrangler/bin/wrangler.js"
NODE="$ROOT/node_modules/.bin/node"
if [[ ! -f $JS ]]; then
  echo "wrangler.sh: $JS missing; run 'make node_modules/.stamp' (npm ci) first" >&2
  exit 127
fi
if [[ ! -x $NODE ]]; then
  NODE="$(command -v node || true)"
  major="$([[ -n $NODE ]] && "$NODE" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if ((major < 22)); then
    echo "wrangler.sh: no Node >= 22 (node_modules/.bin/node missing, system node major=$major)" >&2
    exit 127
  fi
fi
export WRANGLER_SEND_METRICS="${WRANGLER_SEND_METRICS:-false}"
exec "$NODE" "$JS" "$@"
