#!/usr/bin/env bash
# Runs the whole system locally: Mosquitto on a free port, the demo SSE source, the three services
# configured from deploy/local/, a Prometheus scraping their /metrics (when `prometheus` is
# installed; `just setup` installs it), and prints every message reaching the broker until Ctrl-C,
# which stops everything this script started. `--one`: the three services in one process
# (sse-connector).
set -euo pipefail
cd "$(dirname "$0")/.."

run=.local/run
rm -rf "$run" && mkdir -p "$run/resources" "$run/secrets" "$run/trust" "$run/schemas"
bin=target/debug
pids=()
cleanup() {
  trap - EXIT INT TERM
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
# Ctrl-C (or SIGTERM) is how this script is meant to end: stop everything and exit 0, so that
# `just up` reports no failed recipe.
stop() {
  cleanup
  echo "stopped."
  exit 0
}
trap cleanup EXIT
trap stop INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts "$@" in the background with stdout to $run/<name>.out, waits for its "listening on" line
# and sets $addr to it (no command substitution: the pid must be recorded in this shell).
start() {
  local name=$1; shift
  "$bin/$name" "$@" >"$run/$name.out" 2>"$run/$name.log" &
  pids+=($!)
  for _ in $(seq 1 300); do
    if addr=$(grep -m1 -oP "^$name listening on \K\S+" "$run/$name.out" 2>/dev/null); then
      return 0
    fi
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$name exited; see $run/$name.log" >&2; cat "$run/$name.log" >&2; return 1; }
    sleep 0.1
  done
  echo "$name did not start; see $run/$name.log" >&2; return 1
}

mqtt_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n' "$mqtt_port" >"$run/mosquitto.conf"
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto_bin" -c "$run/mosquitto.conf" >"$run/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$mqtt_port") 2>/dev/null && break; sleep 0.1; done

# Each service's admin port (/metrics, /healthz, /readyz), scraped by the Prometheus below.
targets=()
# Records the admin address service $1 printed (it binds port 0) as a scrape target.
admin() {
  local a
  for _ in $(seq 1 100); do
    a=$(grep -m1 -oP "^$1 admin listening on \K\S+" "$run/$1.out" 2>/dev/null) && { targets+=("$1=$a"); return 0; }
    sleep 0.1
  done
  echo "$1 printed no admin address; see $run/$1.log" >&2; return 1
}

start sse-demo-source --listen 127.0.0.1:0; demo=$addr
# The demo station also sends `wind-gust`, which no demo asset routes: ingest discovers it.
discovery_topic=sse-connector/discovery
sed "s#http://127.0.0.1:8088#http://$demo#g" deploy/local/resources/*.yaml >"$run/resources/local.yaml"
if [ "${1:-}" = "--one" ]; then
  start sse-connector --listen 127.0.0.1:0 --schema-listen 127.0.0.1:0 --publisher-listen 127.0.0.1:0 \
    --mqtt-url "mqtt://127.0.0.1:$mqtt_port" --data-dir "$run/schemas" --resources "$run/resources" \
    --secrets-dir "$run/secrets" --trust-dir "$run/trust" --admin-listen 127.0.0.1:0 \
    --discovery-topic "$discovery_topic" --console-listen 127.0.0.1:0; ingest=$addr
  admin sse-connector
  publisher=$(grep -m1 -oP "^sse-connector publisher listening on \K\S+" "$run/sse-connector.out")
  schema=$(grep -m1 -oP "^sse-connector schema listening on \K\S+" "$run/sse-connector.out")
  console=$(grep -m1 -oP "^sse-connector console listening on \K\S+" "$run/sse-connector.out")
else
  start sse-publisher --listen 127.0.0.1:0 --mqtt-url "mqtt://127.0.0.1:$mqtt_port" \
    --admin-listen 127.0.0.1:0; publisher=$addr; admin sse-publisher
  start sse-schema --listen 127.0.0.1:0 --publisher "http://$publisher" --data-dir "$run/schemas" \
    --admin-listen 127.0.0.1:0; schema=$addr; admin sse-schema
  # Checkpoints on the broker, as sse-connector keeps them by default (CHECKPOINT_STORE=none: off).
  start sse-ingest --listen 127.0.0.1:0 --schema "http://$schema" --resources "$run/resources" \
    --secrets-dir "$run/secrets" --trust-dir "$run/trust" \
    --checkpoint-store "${CHECKPOINT_STORE:-mqtt://127.0.0.1:$mqtt_port}" \
    --discovery-topic "$discovery_topic" --admin-listen 127.0.0.1:0; ingest=$addr; admin sse-ingest
  # The web console on loopback (no login there), over the three services' gRPC APIs.
  start sse-console --listen 127.0.0.1:0 --ingest "http://$ingest" --schema "http://$schema" \
    --publisher "http://$publisher" --admin-listen 127.0.0.1:0; console=$addr; admin sse-console
fi

metrics="not started (install prometheus: just setup)"
if command -v prometheus >/dev/null; then
  prom_port=$(free_port)
  {
    printf 'global: { scrape_interval: 5s, evaluation_interval: 5s }\nrule_files: [%s/deploy/prometheus/alerts.yaml]\nscrape_configs:\n' "$PWD"
    for t in "${targets[@]}"; do printf '  - job_name: %s\n    static_configs: [{ targets: ["%s"] }]\n' "${t%%=*}" "${t#*=}"; done
  } >"$run/prometheus.yml"
  prometheus --config.file="$run/prometheus.yml" --storage.tsdb.path="$run/prometheus" \
    --web.listen-address="127.0.0.1:$prom_port" >"$run/prometheus.log" 2>&1 &
  pids+=($!)
  metrics="http://127.0.0.1:$prom_port  (Prometheus; alerts at /alerts, dashboard: deploy/grafana/)"
fi

cat <<INFO
broker     mqtt://127.0.0.1:$mqtt_port
source     http://$demo  (demo weather station)
publisher  $publisher   schema $schema   ingest $ingest   (logs in $run/)
metrics    $metrics
console    http://$console  (the web console: devices, assets, streams, schemas, live events)
ssectl     export SSECTL_INGEST=$ingest SSECTL_SCHEMA=$schema SSECTL_PUBLISHER=$publisher
           $bin/ssectl streams   (then status, asset list, tail --asset weather-sensors: docs/cli.md)
try:       grpcurl -plaintext $ingest sseconnector.v1.IngestService/ListStreams
           grpcurl -plaintext $schema sseconnector.v1.SchemaService/ListSchemas
discovered grpcurl -plaintext $ingest sseconnector.v1.IngestService/ListDiscovered
           mosquitto_sub -h 127.0.0.1 -p $mqtt_port -V mqttv5 -v -t '$discovery_topic/#'
           (event types the demo station sends that no asset routes, with a ready Asset YAML)
messages on factory/# (Ctrl-C stops everything):
INFO
# In a terminal, the subscriber gets the terminal's foreground (job control), so Ctrl-C reaches it
# alone: not `just`, which would report the recipe as interrupted (exit 130) however cleanly this
# script stops. When it ends, everything else is stopped and the script exits 0.
tty=false; [ -t 0 ] && [ -t 1 ] && tty=true
$tty && set -m
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -V mqttv5 -q 1 -t 'factory/#' -F '%t qos=%q retain=%r %C | %p\n    %P' &
pids+=($!)
if $tty; then
  fg %+ >/dev/null || true
  stop
fi
wait "${pids[-1]}"
