#!/usr/bin/env bash
# The Debian packages the test tiers need: PostgreSQL for the postgres tier (started on loopback by
# scripts/postgres.sh), Chromium for the browser tier (Playwright drives /usr/bin/chromium; it never downloads a
# browser), nftables, sudo and systemd (systemd-analyze) for the Ansible tier, SoftHSM (a PKCS#11 token in
# software) for the personal keys on a token. Installed when missing, as root;
# otherwise one line names the command to run.
set -euo pipefail
missing=()
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || missing+=(postgresql)
test -x /usr/bin/chromium || missing+=(chromium)
command -v nft >/dev/null || test -x /usr/sbin/nft || missing+=(nftables)  # the Ansible tier checks its rules with nft -c
command -v sudo >/dev/null || missing+=(sudo)  # the Ansible tier's become to the service account
command -v systemd-analyze >/dev/null || missing+=(systemd)  # the Ansible tier verifies the rendered units
test -e /usr/lib/softhsm/libsofthsm2.so || missing+=(softhsm2)  # the unit tier's PKCS#11 token for personal keys
((${#missing[@]})) || exit 0
if [ "$(id -u)" != 0 ]; then
  echo "the test tiers need Debian packages that are not installed: run  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing the Debian packages the test tiers need: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
