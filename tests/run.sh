#!/usr/bin/env bash
# Runs the whole test suite, including the Prometheus/Alertmanager tests.
#
# Installs what the suite needs when it is missing (Debian packages: prometheus for promtool
# and the live Prometheus, prometheus-alertmanager for amtool and Alertmanager, sqlite3 for the
# CLI used as an oracle, python3-prometheus-client for its OpenMetrics parser, systemd for
# systemd-socket-activate), then checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v systemd-socket-activate >/dev/null 2>&1 || need+=(systemd)
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || need+=(python3-prometheus-client)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "tests/run.sh: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${need[@]}" | sort -u)
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
