#!/usr/bin/env bash
# `make demo`: a local 4-validator CyberMesh cluster from a fresh checkout.
# Makes sure PostgreSQL and Redis are up (scripts/ensure_services.sh), then runs
# `manage.py cluster up --validators 4`, which generates keys and genesis once, gives each node
# its own database, and starts the validators, an embedded Kafka-protocol broker, an ingest
# consumer per node and a traffic generator in the background; it prints the admin URLs and
# login when the heights climb. Stop everything with `manage.py cluster down`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure_services.sh
export LOG_FORMAT=${LOG_FORMAT:-json}
exec .venv/bin/python manage.py cluster up --validators 4 --dir "${DEMO_DIR:-.cluster}" \
  --rate "${DEMO_RATE:-20}" "$@"
