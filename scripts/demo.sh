#!/usr/bin/env bash
# `make demo`: a local CyberMesh node from a fresh checkout.
# Generates a 4-validator cluster configuration (keys + genesis) once, then sets up and serves
# node-0: the Django admin, the REST API and its docs. The cluster grows into 4 running
# validators as the node runtime lands (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
DEMO=.demo
PORT=${DEMO_PORT:-8000}

if [ ! -f "$DEMO/cluster/genesis.json" ]; then
  "$PY" manage.py init_cluster --validators 4 --out "$DEMO/cluster"
fi
set -a
# shellcheck disable=SC1091
. "$DEMO/cluster/node-0/node.env"
set +a
export LOG_FORMAT=${LOG_FORMAT:-console}

"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py collectstatic --noinput -v 0
"$PY" manage.py demo_admin --password-file "$DEMO/admin-password" >/dev/null

cat <<TXT

  CyberMesh node-0 is starting on http://127.0.0.1:${PORT}/

    Admin console   http://127.0.0.1:${PORT}/admin/
    Health          http://127.0.0.1:${PORT}/api/v1/health/
    API docs        http://127.0.0.1:${PORT}/api/docs/   (Redoc: /api/redoc/)

    Login           admin / $(cat "$DEMO/admin-password")
                    (password kept in $DEMO/admin-password, mode 0600)

  Press Ctrl-C to stop.

TXT
exec .venv/bin/daphne -b 127.0.0.1 -p "$PORT" cybermesh.asgi:application
