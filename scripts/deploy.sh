#!/usr/bin/env bash
# Deploy the three workers to one environment: `make deploy ENV=staging|production`.
#   1. dry-run every config (and refuse placeholder KV ids, naming the command that creates each;
#      Durable Object classes need nothing beforehand: their [[migrations]] create them),
#   2. check the secrets exist,
#   3. vendor python_modules/ with `pywrangler sync` in wrangler.toml.d/,
#   4. deploy leaf first: isbndb -> proxy -> warmer (a binding's target must exist first).
# Needs `wrangler login` (or CLOUDFLARE_API_TOKEN). SKIP_SECRET_CHECK=1 skips step 2.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ENV_NAME="${1:-${ENV:-}}"
case "$ENV_NAME" in
  staging | production) ;;
  *)
    echo "deploy.sh: ENV must be 'staging' or 'production' (got '${ENV_NAME}')" >&2
    exit 2
    ;;
esac
WRANGLER="${WRANGLER:-$ROOT/scripts/wrangler.sh}"
UV="${UV:-$(command -v uv || echo "$ROOT/.tools/bin/uv")}"
[[ "$UV" == /* ]] || UV="$ROOT/$UV"
export PATH="$(dirname "$UV"):$PATH" # pywrangler looks uv up on PATH
CONFIGS=(isbndb_worker books_api_proxy cache_warmer) # leaf first
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "==> [1/4] validating configs for '$ENV_NAME' (wrangler deploy --dry-run)"
for c in "${CONFIGS[@]}"; do
  $WRANGLER deploy --dry-run --outdir "$TMP/$c" -c "wrangler.toml.d/$c.toml" --env "$ENV_NAME" >"$TMP/$c.log" 2>&1 ||
    { cat "$TMP/$c.log" >&2; echo "deploy.sh: dry-run of $c failed" >&2; exit 1; }
  echo "    ok  $c"
done
# Secrets Store bindings and placeholder ids of this env, as "store_id secret_name" lines.
"$UV" run --frozen python - "$ENV_NAME" >"$TMP/secrets" <<'PY'
import sys, tomllib, pathlib
env = sys.argv[1]
bad = []
for name in ("isbndb_worker", "books_api_proxy", "cache_warmer"):
    table = tomllib.loads(pathlib.Path(f"wrangler.toml.d/{name}.toml").read_text())["env"][env]
    for kv in table.get("kv_namespaces", []):
        if "REPLACE" in kv["id"]:
            bad.append(
                f"{name}: [env.{env}] kv_namespaces {kv['binding']} id is a placeholder; create "
                f"it with `scripts/wrangler.sh kv namespace create {kv['binding']}-{env}` and "
                f"paste the id into wrangler.toml.d/{name}.toml"
            )
    for s in table.get("secrets_store_secrets", []):
        print(s["store_id"], s["secret_name"])
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
PY

echo "==> [2/4] checking secrets"
if [[ "${SKIP_SECRET_CHECK:-0}" == 1 ]]; then
  echo "    skipped (SKIP_SECRET_CHECK=1)"
else
  missing=0
  while read -r store secret; do
    if ! $WRANGLER secrets-store secret list "$store" --remote 2>/dev/null | grep -q -- "$secret"; then
      echo "    MISSING Secrets Store secret '$secret' in store $store:" >&2
      echo "      $WRANGLER secrets-store secret create $store --name $secret --scopes workers --remote" >&2
      missing=1
    else
      echo "    ok  secrets store: $secret"
    fi
  done <"$TMP/secrets"
  if ! $WRANGLER secret list -c wrangler.toml.d/cache_warmer.toml --env "$ENV_NAME" 2>/dev/null |
    grep -q '"WARMER_ADMIN_TOKEN"'; then
    echo "    MISSING worker secret WARMER_ADMIN_TOKEN:" >&2
    echo "      $WRANGLER secret put WARMER_ADMIN_TOKEN -c wrangler.toml.d/cache_warmer.toml --env $ENV_NAME" >&2
    missing=1
  else
    echo "    ok  worker secret: WARMER_ADMIN_TOKEN"
  fi
  ((missing == 0)) || { echo "deploy.sh: secrets missing, nothing deployed" >&2; exit 1; }
fi

echo "==> [3/4] vendoring python_modules/ (pywrangler sync in wrangler.toml.d/)"
(cd wrangler.toml.d && "$UV" run --frozen --project .. pywrangler sync)
# pywrangler re-installs only when wrangler.toml.d/pyproject.toml changes: ship today's bookmeta.
"$UV" run --frozen python devtools/workerd_runtime.py refresh-bookmeta

echo "==> creating the warming queues of '$ENV_NAME' (idempotent: an existing queue is kept)"
for q in $("$UV" run --frozen python - "$ENV_NAME" <<'PY'
import sys, tomllib, pathlib
env = sys.argv[1]
top = tomllib.loads(pathlib.Path("wrangler.toml.d/cache_warmer.toml").read_text())
section = top.get("env", {}).get(env, top)
queues = section.get("queues", {})
names = {p["queue"] for p in queues.get("producers", [])}
for c in queues.get("consumers", []):
    names.add(c["queue"])
    if c.get("dead_letter_queue"):
        names.add(c["dead_letter_queue"])
print("\n".join(sorted(names)))
PY
); do
  if ! out="$($WRANGLER queues create "$q" 2>&1)"; then
    grep -qiE "already (exists|taken)" <<<"$out" ||
      { echo "$out" >&2; echo "deploy.sh: create queue $q first: scripts/wrangler.sh queues create $q" >&2; exit 1; }
  fi
  echo "    queue $q ready"
done

echo "==> [4/4] deploying (leaf first)"
for c in "${CONFIGS[@]}"; do
  echo "--> $c"
  $WRANGLER deploy -c "wrangler.toml.d/$c.toml" --env "$ENV_NAME"
done
echo "deploy.sh: '$ENV_NAME' deployed"
