#!/usr/bin/env bash
# `make demo`: a workspace in ./demo-workspace, the server in the background, the quick-start
# data asset and environment registered and listed, then the server stopped cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
MLYARD="$PWD/.venv/bin/mlyard"
WS="${MLYARD_DEMO_WORKSPACE:-$PWD/demo-workspace}"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ -f "$WS/.mlyard/server.pid" ]; then "$MLYARD" --workspace "$WS" server stop || true; fi
rm -rf "$WS"
PORT=$("$PWD/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

say "mlyard workspace init $WS"
"$MLYARD" workspace init "$WS" --port "$PORT"
export MLYARD_WORKSPACE="$WS"
trap '"$MLYARD" server stop >/dev/null 2>&1 || true' EXIT

say "mlyard server start"
"$MLYARD" server start

say "mlyard data create -f examples/quickstart/data.yml"
"$MLYARD" data create -f examples/quickstart/data.yml
say "mlyard environment create -f examples/quickstart/train-env.yml"
"$MLYARD" environment create -f examples/quickstart/train-env.yml

say "mlyard data list / environment list"
"$MLYARD" data list
"$MLYARD" environment list

say "mlyard data download -n employees@latest"
"$MLYARD" data download -n employees@latest --download-path "$WS/downloads"

TOKEN_HINT="$WS/.mlyard/client.yaml"
say "Where to look"
cat <<MSG
  server (while running):  http://127.0.0.1:$PORT  (REST API under /api/v1, OpenAPI at /openapi.json,
                           Prometheus at /metrics, health at /healthz; send the token from $TOKEN_HINT
                           as 'Authorization: Bearer <token>')
  workspace folder:        $WS  (mlyard.yaml, mlyard.db, artifacts/workspaceblobstore/LocalUpload/...)
  downloaded data:         $WS/downloads/employees
  server log:              $WS/.mlyard/server.log
  try it yourself:         MLYARD_WORKSPACE=$WS .venv/bin/mlyard server start
MSG

say "mlyard server stop"
"$MLYARD" server stop
trap - EXIT
