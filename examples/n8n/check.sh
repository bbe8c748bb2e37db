#!/usr/bin/env bash
# End-to-end check of ttma-call-events.workflow.json on a real n8n and the Pub/Sub emulator.
# Not run by CI. Everything binds 127.0.0.1 and is stopped on exit (process groups).
#
#   N8N=/path/to/node_modules/.bin/n8n examples/n8n/check.sh
#
# Needs: n8n (tested with 1.82.3: `npm install n8n@1.82.3`), gcloud with the Pub/Sub emulator
# (Java), the repo's .venv (google-cloud-pubsub). Ports: N8N_PORT (5678), PUBSUB_PORT (18585).
#
# Publishes messages whose data is tests/data/call_ended.json (ids made unique) and whose
# attributes are ttma_relay.contract.messages.message_attributes(envelope, "webhook"), to an unwrapped
# push subscription with write_metadata (as terraform/pubsub.tf consumer_push) and a dead-letter
# policy of 5 attempts, then reads n8n's executions from its SQLite database:
#   A  3 calls without the Content-Type attribute: n8n cannot parse the body; the workflow fails,
#      Pub/Sub redelivers, then dead-letters them (nothing is acknowledged with null fields)
#   B  5 calls with it: every field read
#   C  3 calls published again once processed: the copies are skipped (answered 200, acknowledged)
#   C2 3 calls published twice at once: informational, both copies of a call may be processed
#   D  1 call whose first run fails after the dedup check (a copy of the workflow with a step that
#      fails once): redelivered and processed, then a republished copy is skipped
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N8N=${N8N:?set N8N to the n8n executable (npm install n8n@1.82.3; node_modules/.bin/n8n)}
PY=${PY:-$REPO/.venv/bin/python}
N8N_PORT=${N8N_PORT:-5678}
PUBSUB_PORT=${PUBSUB_PORT:-18585}
WORK=$(mktemp -d /tmp/ttma-n8n-check.XXXXXX)

stop_group() { # stop a process group we started, by the pgid its leader recorded
  [ -s "$1" ] || return 0
  local g; g=$(cat "$1")
  kill -TERM -- "-$g" 2>/dev/null || return 0
  for _ in $(seq 1 20); do kill -0 -- "-$g" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL -- "-$g" 2>/dev/null || true
}
cleanup() { stop_group "$WORK/n8n.pgid"; stop_group "$WORK/emulator.pgid"; echo "logs: $WORK"; }
trap cleanup EXIT

for port in "$N8N_PORT" "$PUBSUB_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is in use" >&2; exit 2; fi
done

echo "== Pub/Sub emulator on 127.0.0.1:$PUBSUB_PORT"
setsid bash -c 'echo $$ > "$0/emulator.pgid"; exec gcloud beta emulators pubsub start \
  --host-port="127.0.0.1:$1" --project=ttma-n8n-check --quiet' "$WORK" "$PUBSUB_PORT" \
  > "$WORK/emulator.log" 2>&1 < /dev/null &

export N8N_USER_FOLDER=$WORK/n8n-home N8N_HOST=127.0.0.1 N8N_LISTEN_ADDRESS=127.0.0.1 N8N_PORT
export N8N_DIAGNOSTICS_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false \
  N8N_TEMPLATES_ENABLED=false N8N_PERSONALIZATION_ENABLED=false N8N_SECURE_COOKIE=false \
  N8N_RUNNERS_ENABLED=false N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS=true \
  EXECUTIONS_DATA_SAVE_ON_SUCCESS=all EXECUTIONS_DATA_SAVE_ON_ERROR=all \
  NODE_FUNCTION_ALLOW_BUILTIN=fs  # only for D's copy of the workflow
mkdir -p "$WORK/workflows"
cp "$HERE/ttma-call-events.workflow.json" "$WORK/workflows/"
# D's copy: path ttma-fail-once, a step before "Remember call" that fails on its first run.
"$PY" - "$WORK/workflows" <<'EOF'
import json, sys
d = json.load(open(f"{sys.argv[1]}/ttma-call-events.workflow.json"))
d["id"], d["name"] = "TtmaCheckFailOne", "check: fails once after the dedup check"
for n in d["nodes"]:
    n["id"] = n["id"][:-4] + "f" + n["id"][-3:]
    if n["type"] == "n8n-nodes-base.webhook":
        n["parameters"]["path"], n["webhookId"] = "ttma-fail-once", "5d8f2a0e-1b7c-4c59-8a3e-7f2d6b9c4eff"
# (n8n saves static data only after a successful run, so the "failed once" mark is a file.)
mark = json.dumps(f"{sys.argv[1]}/failed-once")
d["nodes"].append({"parameters": {"jsCode": "const fs = require('fs');\n"
    f"if (!fs.existsSync({mark})) {{ fs.writeFileSync({mark}, '1'); throw new Error('injected failure, first run'); }}\n"
    "return $input.all();"}, "id": "0000000f-0000-4000-8000-000000000001", "name": "Fails once",
    "type": "n8n-nodes-base.code", "typeVersion": 2, "position": [770, 200]})
d["connections"]["Call fields"] = {"main": [[{"node": "Fails once", "type": "main", "index": 0}]]}
d["connections"]["Fails once"] = {"main": [[{"node": "Remember call", "type": "main", "index": 0}]]}
json.dump(d, open(f"{sys.argv[1]}/fail-once.json", "w"), indent=1)
EOF

echo "== n8n $("$N8N" --version 2>/dev/null | tail -1): import, activate, start on 127.0.0.1:$N8N_PORT"
"$N8N" import:workflow --separate --input="$WORK/workflows" > "$WORK/import.log" 2>&1
for id in TtmaCallEvents01 TtmaCheckFailOne; do
  "$N8N" update:workflow --id="$id" --active=true >> "$WORK/import.log" 2>&1
done
setsid bash -c 'echo $$ > "$0/n8n.pgid"; exec "$1" start' "$WORK" "$N8N" > "$WORK/n8n.log" 2>&1 < /dev/null &

for _ in $(seq 1 120); do
  [ "$(grep -c '=> Started' "$WORK/n8n.log" 2>/dev/null)" = 2 ] && curl -fs "127.0.0.1:$PUBSUB_PORT/" > /dev/null && break
  sleep 0.5
done
[ "$(grep -c '=> Started' "$WORK/n8n.log")" = 2 ] || { echo "n8n did not activate both workflows: $WORK/n8n.log" >&2; exit 1; }

PUBSUB_EMULATOR_HOST=127.0.0.1:$PUBSUB_PORT PYTHONPATH=$REPO \
  "$PY" "$HERE/check_pubsub.py" "http://127.0.0.1:$N8N_PORT/webhook" "$N8N_USER_FOLDER/.n8n/database.sqlite"
