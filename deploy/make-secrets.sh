#!/usr/bin/env bash
# Create the secret files docker-compose.yml reads, under deploy/secrets/ (mode 0600 files).
# Run once, from the repository root, before `docker compose up`. Refuses to overwrite.
set -euo pipefail
cd "$(dirname "$0")/.."
SECRETS=${SECRETS_DIR:-deploy/secrets}
PY=${PYTHON:-.venv/bin/python}
umask 077
if [ -e "$SECRETS/cluster/genesis.json" ]; then
  echo "make-secrets: $SECRETS already holds a cluster; refusing to overwrite" >&2; exit 1
fi
mkdir -p "$SECRETS"
"$PY" manage.py init_cluster --validators 4 --out "$SECRETS/cluster" \
  --address-template 'node-{i}-p2p:7000' --chain-id cybermesh-prod
"$PY" -c 'import secrets; print(secrets.token_urlsafe(64))' > "$SECRETS/django_secret_key"
"$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$SECRETS/redis_password"
"$PY" -c 'import json, secrets
print(json.dumps({"current": "k1", "keys": {"k1": secrets.token_hex(32)}}))' \
  > "$SECRETS/audit_keyring.json"
"$PY" manage.py keygen --kind aead --label at-rest-1 --out "$SECRETS/at_rest_key.json" >/dev/null
chmod 600 "$SECRETS"/django_secret_key "$SECRETS"/redis_password "$SECRETS"/audit_keyring.json
echo "make-secrets: wrote $SECRETS (keep it out of version control; it is in .gitignore)"
