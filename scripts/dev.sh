#!/usr/bin/env bash
# Local dev: ONE `wrangler dev` session running all three workers (`make dev`).
#   make dev                    -> real upstreams (needs the keys in .dev.vars)
#   make dev UPSTREAM=fixtures  -> also starts devtools/fixture_upstream.py on 127.0.0.1:8790 and
#                                  runs the configs' [env.fixtures] (base URLs point at it)
#   PRIMARY=proxy|isbndb|warmer -> which worker is exposed on http://127.0.0.1:$PORT (default proxy).
# In a multi-config session only the FIRST config (the primary) gets a URL; the others are reachable
# only through service bindings from it (wrangler's multi-worker dev). Run `make dev PRIMARY=warmer`
# to talk to the warmer directly, and so on.
# Secrets: .dev.vars at the repo root (copy of .dev.vars.example). This script puts
# WARMER_ADMIN_TOKEN into wrangler.toml.d/.dev.vars and the two API keys into the local Secrets
# Store emulation (.wrangler/state), matching how they are bound in the configs.
# Note: the Python Workers runtime downloads its Pyodide bundle on first start (needs network).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WRANGLER="${WRANGLER:-$ROOT/scripts/wrangler.sh}"
UV="${UV:-uv}"
PORT="${PORT:-8787}"
FIXTURE_PORT=8790 # fixed: [env.fixtures] base URLs name it
PRIMARY="${PRIMARY:-proxy}"
UPSTREAM="${UPSTREAM:-}"
PERSIST=".wrangler/state"
STORE_ID="b0562ac16fde468c8af12717a6c88400"

declare -A CONFIG=([isbndb]=isbndb_worker [proxy]=books_api_proxy [warmer]=cache_warmer)
[[ -n "${CONFIG[$PRIMARY]:-}" ]] || { echo "dev.sh: PRIMARY must be isbndb, proxy or warmer" >&2; exit 2; }
ORDER=("$PRIMARY")
for w in isbndb proxy warmer; do [[ $w == "$PRIMARY" ]] || ORDER+=("$w"); done
ARGS=()
for w in "${ORDER[@]}"; do ARGS+=(-c "wrangler.toml.d/${CONFIG[$w]}.toml"); done

ENV_ARGS=()
case "$UPSTREAM" in
  "") ;;
  fixtures) ENV_ARGS=(--env fixtures) ;;
  *) echo "dev.sh: UPSTREAM must be empty or 'fixtures'" >&2; exit 2 ;;
esac

# --- secrets
if [[ ! -f .dev.vars ]]; then
  cp .dev.vars.example .dev.vars
  echo "dev.sh: created .dev.vars from .dev.vars.example: put your keys there" >&2
fi
val() { sed -n "s/^$1=//p" .dev.vars | tail -n 1; }
printf 'WARMER_ADMIN_TOKEN=%s\n' "$(val WARMER_ADMIN_TOKEN)" >wrangler.toml.d/.dev.vars
for pair in ISBNDB_API_KEY:ISBNDB_API_KEY GOOGLE_BOOKS_API_KEY:Google_books_hardoooe; do
  var="${pair%%:*}" secret="${pair#*:}"
  $WRANGLER secrets-store secret create "$STORE_ID" --name "$secret" --value "$(val "$var")" \
    --scopes workers --persist-to "$PERSIST" >/dev/null 2>&1 || true # already there: keep it
done

# --- python_modules/ (pywrangler only re-syncs when wrangler.toml.d/pyproject.toml changed)
if ! (cd wrangler.toml.d && "$UV" run --frozen --project .. pywrangler sync); then
  if [[ -d wrangler.toml.d/python_modules ]]; then
    echo "dev.sh: pywrangler sync failed; using the existing wrangler.toml.d/python_modules" >&2
  else
    echo "dev.sh: pywrangler sync failed and wrangler.toml.d/python_modules is missing" >&2
    exit 1
  fi
fi

# --- fixture upstream
FIXTURE_PID=""
cleanup() { [[ -z "$FIXTURE_PID" ]] || kill "$FIXTURE_PID" 2>/dev/null || true; }
trap cleanup EXIT
if [[ "$UPSTREAM" == fixtures ]]; then
  "$UV" run --frozen python devtools/fixture_upstream.py --port "$FIXTURE_PORT" &
  FIXTURE_PID=$!
  sleep 1
fi

# --- what to paste
BASE="http://127.0.0.1:$PORT"
TOKEN="$(val WARMER_ADMIN_TOKEN)"
echo
echo "Primary worker: $PRIMARY ($BASE); others via service bindings only. Try:"
case "$PRIMARY" in
  proxy)
    echo "  curl '$BASE/search/auto?q=9780441013593&maxResults=1'"
    echo "  curl '$BASE/search/auto?q=frank%20herbert&maxResults=40&includeTranslations=false'"
    ;;
  isbndb)
    echo "  curl '$BASE/author/frank%20herbert?page=1&pageSize=50&language=en'"
    ;;
  warmer)
    echo "  curl '$BASE/health'"
    echo "  curl -X POST --data-binary @library.csv -H 'Content-Type: text/csv' -H 'Authorization: Bearer $TOKEN' '$BASE/libraries'"
    echo "  curl -H 'Authorization: Bearer $TOKEN' '$BASE/libraries/<id>'"
    echo "  # the other two workers, through the warmer's bindings:"
    echo "  curl -H 'Authorization: Bearer $TOKEN' '$BASE/debug/proxy/search/auto?q=9780441013593&maxResults=1'"
    echo "  curl -H 'Authorization: Bearer $TOKEN' '$BASE/debug/proxy/search/auto?q=frank%20herbert&maxResults=40&includeTranslations=false'"
    echo "  curl -H 'Authorization: Bearer $TOKEN' '$BASE/debug/isbndb/author/frank%20herbert?page=1&pageSize=50&language=en'"
    ;;
esac
echo "  (PRIMARY=proxy: /search/auto?q=...; PRIMARY=isbndb: /author/...; PRIMARY=warmer: upload, progress, /debug/...)"
echo "  crons: curl '$BASE/cdn-cgi/local/scheduled?cron=*/15+*+*+*+*' (PRIMARY=warmer)"
[[ -z "$FIXTURE_PID" ]] || echo "  fixture upstream: curl http://127.0.0.1:$FIXTURE_PORT/__calls"
echo

$WRANGLER dev "${ARGS[@]}" "${ENV_ARGS[@]}" --ip 127.0.0.1 --port "$PORT" --persist-to "$PERSIST" \
  --test-scheduled --show-interactive-dev-session=false
