#!/usr/bin/env bash
# `make demo`: Azure's MLOps template flow for the attrition example, on this machine.
# A workspace in ./demo-workspace, the server in the background, the data asset and environment registered,
# the four-step training pipeline run with live progress, the registered model and its metrics shown, the
# same pipeline run again (every step reused); then the model deployed to an online endpoint (blue: no-code, all
# traffic), invoked with the CLI and with curl, a scoring-script deployment (green, 0%) invoked by name
# (MLYARD_DEMO_GREEN=0 skips it), the drifted production files scored by a no-code batch deployment; then the
# loop: the drifted files sent to the endpoint as traffic, the attrition monitor run on what blue collected, the
# features that drifted printed, and the retraining job the alert's trigger started followed to its new model
# version; and the server stopped cleanly (its workers with it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$PWD/.venv/bin/python"
MLYARD="$PWD/.venv/bin/mlyard"
WS="${MLYARD_DEMO_WORKSPACE:-$PWD/demo-workspace}"
TRAIN=examples/attrition/mlops/azureml/train
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
now() { "$PY" -c 'import time; print(time.time())'; }
elapsed() { "$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

if [ -f "$WS/.mlyard/server.lock" ]; then "$MLYARD" --workspace "$WS" server stop || true; fi
rm -rf "$WS"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# mlflow's telemetry would try the internet from the demo's own python snippets.
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true

say "mlyard workspace init $WS"
"$MLYARD" workspace init "$WS" --port "$PORT"
export MLYARD_WORKSPACE="$WS"
trap '"$MLYARD" server stop >/dev/null 2>&1 || true' EXIT

say "mlyard server start"
"$MLYARD" server start

say "mlyard data create -f $TRAIN/data.yml"
"$MLYARD" data create -f "$TRAIN/data.yml"
say "mlyard environment create -f $TRAIN/train-env.yml"
"$MLYARD" environment create -f "$TRAIN/train-env.yml"

FIRST=attrition-train-1
say "mlyard job create -f $TRAIN/pipeline.yml --stream   (prep -> train -> evaluate -> register)"
T0=$(now)
"$MLYARD" job create -f "$TRAIN/pipeline.yml" --name "$FIRST" --stream
T1=$(now)

say "mlyard model show -n attrition-model@latest   (registered by the register_model step)"
"$MLYARD" model show -n attrition-model@latest

say "the metrics the steps logged, read with the mlflow client (MlflowClient.search_runs)"
MLFLOW_TRACKING_TOKEN=$(sed -n 's/^token: //p' "$WS/.mlyard/client.yaml") "$PY" - "http://127.0.0.1:$PORT" "$FIRST" <<'EOF'
import sys

from mlflow import MlflowClient

url, pipeline = sys.argv[1], sys.argv[2]
client = MlflowClient(tracking_uri=url, registry_uri=url)
version = client.get_model_version("attrition-model", "1")
source = client.get_run(version.run_id)
print(f"attrition-model:{version.version} comes from run {version.run_id} (pipeline {pipeline})")
for run in sorted(client.search_runs([source.info.experiment_id], f"tags.mlflow.parentRunId = '{pipeline}'"),
                  key=lambda r: r.info.start_time or 0):
    metrics = ", ".join(f"{k}={v:.3f}" if v % 1 else f"{k}={v:.0f}" for k, v in sorted(run.data.metrics.items()))
    print(f"  {run.info.run_name:<16} {metrics}")
EOF

say "mlyard job download -n $FIRST --output-name evaluation_output"
"$MLYARD" job download -n "$FIRST" --output-name evaluation_output --download-path "$WS/downloads"
EVAL="$WS/downloads/named-outputs/evaluation_output"
grep -E '^test_[a-z0-9]+: ' "$EVAL/score.txt" | sed 's/^/  /'
echo "  deploy_flag: $(cat "$EVAL/deploy_flag")   (all files: $EVAL)"

SECOND=attrition-train-2
say "the same pipeline again: nothing changed, so every step is reused"
T2=$(now)
"$MLYARD" job create -f "$TRAIN/pipeline.yml" --name "$SECOND" --stream
T3=$(now)
"$MLYARD" model list --name attrition-model

say "wall time of 'mlyard job create --stream'"
FIRST_S=$(elapsed "$T0" "$T1")
SECOND_S=$(elapsed "$T2" "$T3")
"$PY" -c "import sys; a, b = map(float, sys.argv[1:]); print(f'  first run:  {a:5.1f} s (4 steps run)\n  second run: {b:5.1f} s (4 steps reused, {100 * b / a:.0f}% of the first)')" "$FIRST_S" "$SECOND_S"

EP=attrition-online
DEPLOY=examples/attrition/mlops/azureml/deploy/online
REQUEST=examples/attrition/data/attrition-request.json
say "mlyard online-endpoint create -f $DEPLOY/online-endpoint.yml   (auth_mode: key)"
"$MLYARD" online-endpoint create -f "$DEPLOY/online-endpoint.yml"
say "mlyard online-deployment create -n blue -e $EP -f $DEPLOY/online-deployment.yml --all-traffic   (no-code)"
"$MLYARD" online-deployment create -n blue --endpoint-name "$EP" -f "$DEPLOY/online-deployment.yml" --all-traffic
say "mlyard online-endpoint invoke -n $EP --request-file $REQUEST   (one 0/1 per row; 1: predicted to leave)"
"$MLYARD" online-endpoint invoke -n "$EP" --request-file "$REQUEST"
SCORING_URI=$("$MLYARD" online-endpoint show -n "$EP" --query scoring_uri -o tsv)
KEY=$("$MLYARD" online-endpoint get-credentials -n "$EP" --query primaryKey -o tsv)
say "the same request with curl, as any client sends it"
echo "  scoring URI: $SCORING_URI"
echo "  KEY=\$(.venv/bin/mlyard online-endpoint get-credentials -n $EP --query primaryKey -o tsv)   # ${KEY:0:6}..."
echo "  curl -s -H \"Authorization: Bearer \$KEY\" -H 'Content-Type: application/json' \\"
echo "       --data @examples/attrition/data/attrition-request-rows.json $SCORING_URI"
if command -v curl >/dev/null; then
  printf '  -> '
  curl -sS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
       --data @examples/attrition/data/attrition-request-rows.json "$SCORING_URI"
  echo "   (the same rows as a list of lists)"
fi

if [ "${MLYARD_DEMO_GREEN:-1}" = 1 ]; then
  say "mlyard online-deployment create -n green -e $EP -f $DEPLOY/online-deployment-green.yml   (score.py, 0% traffic)"
  "$MLYARD" online-deployment create -n green --endpoint-name "$EP" -f "$DEPLOY/online-deployment-green.yml"
  say "mlyard online-endpoint invoke -n $EP --deployment-name green --request-file $REQUEST"
  "$MLYARD" online-endpoint invoke -n "$EP" --deployment-name green --request-file "$REQUEST"
  echo "  traffic, unchanged (green answers only when named): $("$MLYARD" online-endpoint show -n "$EP" --query traffic -o json | tr -d ' \n')"
fi

BEP=attrition-batch
BATCH=examples/attrition/mlops/azureml/deploy/batch
PROD=examples/attrition/data/production
say "mlyard batch-endpoint create -f $BATCH/batch-endpoint.yml; batch-deployment create -f $BATCH/batch-deployment.yml"
"$MLYARD" batch-endpoint create -f "$BATCH/batch-endpoint.yml"
"$MLYARD" batch-deployment create -f "$BATCH/batch-deployment.yml" --set-default
say "mlyard batch-endpoint invoke -n $BEP --input $PROD --stream   (this month's drifted employee files)"
BJOB=attrition-batch-1
"$MLYARD" batch-endpoint invoke -n "$BEP" --input "$PROD" --job-name "$BJOB" --stream
"$MLYARD" job download -n "$BJOB" --output-name score --download-path "$WS/downloads"
PRED="$WS/downloads/named-outputs/score/predictions.csv"
echo "  $(wc -l < "$PRED") predictions (row, prediction, file) in $PRED:"
head -3 "$PRED" | sed 's/^/    /'
"$PY" -c "import sys, csv; rows = list(csv.reader(open(sys.argv[1]))); print(f'  predicted to leave: {sum(r[1] == \"1\" for r in rows)} of {len(rows)}')" "$PRED"

MON=examples/attrition/mlops/azureml/monitoring/attrition-monitor.yml
AUTO=examples/attrition/mlops/azureml/automation
say "mlyard trigger create -f $AUTO/retrain-on-drift.yml   (a drift alert of attrition-monitor retrains the model)"
# its create_job sets force_rerun: unchanged data would otherwise reuse every step of the pipeline
"$MLYARD" trigger create -f "$AUTO/retrain-on-drift.yml"
say "the drifted production files sent to $EP as traffic   (blue collects each request's inputs and outputs)"
"$PY" examples/attrition/mlops/monitoring/send_traffic.py --scoring-uri "$SCORING_URI" --key "$KEY" "$PROD"/*.csv
say "mlyard monitor run -f $MON   (blue's collected inputs of the last day against the training data)"
"$MLYARD" monitor run -f "$MON" -o json > "$WS/monitor-run.json"
"$PY" - "$WS/monitor-run.json" <<'PYEOF'
import json
import sys

result = json.load(open(sys.argv[1]))
print(f"  monitor run at {result['runAt']}: {result['status']}")
for signal in result["signals"]:
    features = signal["metrics"]["features"]
    moved = [(f, m) for f, v in features.items() for m in v["metrics"] if m["alert"]]
    print(f"  {signal['signalName']}: {signal['status']}, {len({f for f, _ in moved})} of {len(features)} features "
          "crossed their threshold")
    for feature, m in sorted(moved, key=lambda fm: -(fm[1]["metricValue"] or 0)):
        print(f"    {feature:<22} {m['metricName']} {m['metricValue']:.3f} > {m['threshold']}")
PYEOF
MJOB=$("$MLYARD" monitor show -n attrition-monitor --query 'runs[0].job' -o tsv)
"$MLYARD" job download -n "$MJOB" --output-name signals --download-path "$WS/downloads" >/dev/null
echo "  report: $WS/downloads/named-outputs/signals/report.html   (open it in a browser)"
say "the alert is an event; the trigger answered it with the training pipeline: following it"
"$MLYARD" events --type monitor.signal_alerted
RJOB=""
for _ in $(seq 1 120); do
  RJOB=$("$MLYARD" trigger show -n attrition-retrain-on-drift --query 'firings[?job] | [0].job' -o tsv || true)
  if [ -n "$RJOB" ] && [ "$RJOB" != "None" ]; then break; fi
  sleep 0.5
done
echo "  retraining job: $RJOB"
"$MLYARD" job stream -n "$RJOB"
say "mlyard model list --name attrition-model   (the retrained model is the new version)"
"$MLYARD" model list --name attrition-model

say "Where to look"
cat <<MSG
  server (while running):  http://127.0.0.1:$PORT  (REST API under /api/v1, OpenAPI at /openapi.json,
                           Prometheus at /metrics, health at /healthz; send the token from
                           $WS/.mlyard/client.yaml as 'Authorization: Bearer <token>')
  MLflow tracking URI:     http://127.0.0.1:$PORT  (MLFLOW_TRACKING_URI; the token goes in MLFLOW_TRACKING_TOKEN)
  workspace folder:        $WS  (mlyard.yaml, mlyard.db, artifacts/workspaceblobstore/azureml/<job>/<output>/)
  step logs:               $WS/.mlyard/jobs/${FIRST}_train_model/user_logs/std_log.txt
  server log:              $WS/.mlyard/server.log
  online endpoint:         $EP  (scoring URI $SCORING_URI, key auth;
                           .venv/bin/mlyard online-deployment list -e $EP, then get-logs -n blue -e $EP)
  batch endpoint:          $BEP  (.venv/bin/mlyard batch-endpoint list-jobs -n $BEP; job $BJOB's log:
                           .venv/bin/mlyard job stream -n $BJOB; predictions: $PRED)
  monitor:                 attrition-monitor  (.venv/bin/mlyard monitor show -n attrition-monitor; the report:
                           $WS/downloads/named-outputs/signals/report.html; the retraining: $RJOB)
  try it yourself:         export MLYARD_WORKSPACE=$WS; .venv/bin/mlyard server start
                           .venv/bin/mlyard job show -n $FIRST
                           .venv/bin/mlyard job download -n $FIRST --all --download-path ./out
                           .venv/bin/mlyard job create -f $TRAIN/pipeline.yml --stream --set settings.force_rerun=true
                           .venv/bin/mlyard online-endpoint invoke -n $EP --request-file $REQUEST
                           .venv/bin/mlyard online-endpoint update -n $EP --traffic "blue=90 green=10"   (with green)
MSG

say "mlyard server stop"
"$MLYARD" server stop
trap - EXIT
