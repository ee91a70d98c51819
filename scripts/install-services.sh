#!/usr/bin/env bash
# Install the real services the tests start on loopback (PostgreSQL, RabbitMQ) when they are missing, and
# Debian's Chromium, with which a test looks at the Prefect UI's flow run page as an operator would.
# The tests themselves start and stop throwaway instances; nothing here starts a service.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || need+=(rabbitmq-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages) for the test services"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null || {
    # apt's own attempt to start the services fails without systemd; the packages are still installed.
    command -v rabbitmq-server >/dev/null 2>&1 || { echo "could not install ${need[*]}"; exit 1; }
  }
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package) for the browser test of the Prefect UI"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; } ||
    echo "could not install chromium: the browser test will be skipped"
fi
