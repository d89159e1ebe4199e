#!/usr/bin/env bash
# Debian packages that some tests use: prometheus (server + promtool) for the deployment tests, chromium
# and its driver for the inspector page's browser tests, haproxy (the load balancer in front of two service
# replicas) and dnsmasq (a DNS server whose records the judge discovery test changes) for the fleet tests.
# Opt-in (scripts/test.sh runs it only with SCRIBE_TEST_INSTALL_SYSTEM=1, as .ci/run sets): it changes the
# machine. Package scripts are kept from starting daemons (policy-rc.d), so nothing is left running.
set -euo pipefail
packages=()
command -v prometheus > /dev/null && command -v promtool > /dev/null || packages+=(prometheus)
command -v chromium > /dev/null && command -v chromedriver > /dev/null || packages+=(chromium chromium-driver)
command -v haproxy > /dev/null || [ -x /usr/sbin/haproxy ] || packages+=(haproxy)
command -v dnsmasq > /dev/null || [ -x /usr/sbin/dnsmasq ] || packages+=(dnsmasq)
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
  echo "install_system_tools: needs root and apt-get to install ${packages[*]}; the tests that need them will skip"
  exit 0
fi
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added_policy=1
fi
trap '[ "$added_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" > /dev/null
echo "installed: ${packages[*]}"
