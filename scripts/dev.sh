#!/usr/bin/env bash
# Local dev: ONE `wrangler dev` session running all three workers (`make dev`).
#   make dev                    -> real upstreams (needs the keys in .dev.vars)
#   make dev UPSTREAM=fixtures  -> also starts devtools/fixture_upstream.py on 127.0.0.1:$FIXTURE_PORT
#                                  (default 8790) and runs the configs' [env.fixtures] against it
#   PRIMARY=proxy|isbndb|warmer -> which worker is exposed on http://127.0.0.1:$PORT (default proxy).
# In a multi-config session only the FIRST config (the primary) gets a URL; the others are reachable
# only through service bindings from it (wrangler's multi-worker dev). Run `make dev PRIMARY=warmer`
# to talk to the warmer directly, and so on.
# Runtime: devtools/workerd_runtime.py picks the offline runtime (../shared/runtime, or
# $BOOKMETA_RUNTIME_DIR) when there is one, else wrangler's own (downloads Pyodide: needs network);
# it vendors wrangler.toml.d/python_modules and writes the configs wrangler runs into
# wrangler.toml.d/.dev/ (git-ignored; the offline runtime's dev flag lives only there).
# Secrets: .dev.vars at the repo root (copy of .dev.vars.example). This script puts
# WARMER_ADMIN_TOKEN and PROXY_APP_KEYS into wrangler.toml.d/.dev/.dev.vars and the two API keys into the local Secrets
# Store emulation (.wrangler/state), matching how they are bound in the configs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WRANGLER="${WRANGLER:-$ROOT/scripts/wrangler.sh}"
UV="${UV:-$(command -v uv || echo "$ROOT/.tools/bin/uv")}"
[[ "$UV" == /* ]] || UV="$ROOT/$UV" # absolute: the runtime helper runs it from other folders
export PATH="$(dirname "$UV"):$PATH" # pywrangler looks uv up on PATH
PORT="${PORT:-8787}"
FIXTURE_PORT="${FIXTURE_PORT:-8790}" # the generated configs' [env.fixtures] base URLs name it
DEV_CONFIGS="wrangler.toml.d/.dev" # generated, git-ignored; one folder per fixture port
[[ "$FIXTURE_PORT" == 8790 ]] || DEV_CONFIGS="wrangler.toml.d/.dev-$FIXTURE_PORT"
PRIMARY="${PRIMARY:-proxy}"
UPSTREAM="${UPSTREAM:-}"
# Local state (KV, R2, Secrets Store): one folder per upstream mode, so fixture keys and real keys
# never mix. PERSIST overrides it (the tests use a temporary folder).
PERSIST="${PERSIST:-.wrangler/state${UPSTREAM:+-$UPSTREAM}}"
STORE_ID="b0562ac16fde468c8af12717a6c88400"

declare -A CONFIG=([isbndb]=isbndb_worker [proxy]=books_api_proxy [warmer]=cache_warmer)
[[ -n "${CONFIG[$PRIMARY]:-}" ]] || { echo "dev.sh: PRIMARY must be isbndb, proxy or warmer" >&2; exit 2; }
ORDER=("$PRIMARY")
for w in isbndb proxy warmer; do [[ $w == "$PRIMARY" ]] || ORDER+=("$w"); done
ARGS=()
for w in "${ORDER[@]}"; do ARGS+=(-c "$DEV_CONFIGS/${CONFIG[$w]}.toml"); done

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
for pair in ISBNDB_API_KEY:ISBNDB_API_KEY GOOGLE_BOOKS_API_KEY:Google_books_hardoooe; do
  var="${pair%%:*}" secret="${pair#*:}" value="$(val "${pair%%:*}")"
  # The fixture upstream accepts any key: run the whole pipeline keyless against it.
  [[ -n "$value" || "$UPSTREAM" != fixtures ]] || value="fixtures-$var"
  [[ -n "$value" ]] || continue # no key: the worker reports itself unconfigured
  $WRANGLER secrets-store secret create "$STORE_ID" --name "$secret" --value "$value" \
    --scopes workers --persist-to "$PERSIST" >/dev/null 2>&1 || true # already there: keep it
done

# --- runtime, python_modules/ and the generated configs
PREPARED="$("$UV" run --frozen python devtools/workerd_runtime.py prepare --configs "$DEV_CONFIGS" \
  --fixture-port "$FIXTURE_PORT")" || { echo "dev.sh: could not prepare the Workers runtime" >&2; exit 1; }
WORKERD_WRAPPER="$(sed -n 's/^MINIFLARE_WORKERD_PATH=//p' <<<"$PREPARED")"
if [[ -n "$WORKERD_WRAPPER" ]]; then export MINIFLARE_WORKERD_PATH="$WORKERD_WRAPPER"; fi
printf 'WARMER_ADMIN_TOKEN=%s\nPROXY_APP_KEYS=%s\n' "$(val WARMER_ADMIN_TOKEN)" "$(val PROXY_APP_KEYS)" \
  >"$DEV_CONFIGS/.dev.vars"

# --- fixture upstream
FIXTURE_PID=""
WRANGLER_PID=""
cleanup() {
  for pid in $WRANGLER_PID $FIXTURE_PID; do kill "$pid" 2>/dev/null || true; done
  for pid in $WRANGLER_PID $FIXTURE_PID; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ "$UPSTREAM" == fixtures ]]; then
  "$UV" run --frozen python devtools/fixture_upstream.py --port "$FIXTURE_PORT" &
  FIXTURE_PID=$!
  for _ in $(seq 1 50); do # until it answers (at most 10 s)
    (exec 3<>"/dev/tcp/127.0.0.1/$FIXTURE_PORT") 2>/dev/null && break
    sleep 0.2
  done
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
echo "  crons: curl '$BASE/cdn-cgi/handler/scheduled?cron=*/15+*+*+*+*' (PRIMARY=warmer)"
[[ -z "$FIXTURE_PID" ]] || echo "  fixture upstream: curl http://127.0.0.1:$FIXTURE_PORT/__calls"
echo

# In the background + wait, so the traps above run (and stop it) on Ctrl-C or TERM.
$WRANGLER dev "${ARGS[@]}" "${ENV_ARGS[@]}" --ip 127.0.0.1 --port "$PORT" --persist-to "$PERSIST" \
  --test-scheduled --show-interactive-dev-session=false </dev/null &
WRANGLER_PID=$!
wait "$WRANGLER_PID"
