#!/bin/bash
# EC2 user-data for a fleet instance (Amazon Linux 2023; any systemd distro with Node >= 20):
# install Node and the autoscaler package, write the agent's config, start the agent unit.
# The agent learns its own instance id, zone, type and private address from IMDSv2
# (AGENT_IDENTITY=imds), so this script makes no metadata calls. See docs/deploy-aws.md.
#
# Set these before use: edit them here, or template them when you build the launch template.
MONITOR_SERVER="${MONITOR_SERVER:-10.0.0.10:50051}" # private host:port of the monitor server's gRPC listener
GROUP_ID="${GROUP_ID:-default}"                     # scaling group; must equal the controller's GROUP_ID
# The package: `npm pack` output. Either a path on the instance (baked into the AMI) ...
AUTOSCALER_TARBALL="${AUTOSCALER_TARBALL:-/opt/autoscaler.tgz}"
# ... or a URL to fetch it from (an S3 presigned URL, your artifact store). Wins when set.
AUTOSCALER_URL="${AUTOSCALER_URL:-}"
# Report simulated load instead of real CPU (demos only).
AGENT_SIMULATE="${AGENT_SIMULATE:-false}"
# Mutual TLS to the monitor server (docs/security.md): `autoscaler certs init DIR --group GROUP_ID`
# makes ca.crt and group-GROUP_ID.crt/.key; put them at /etc/autoscaler/tls/{ca.crt,agent.crt,agent.key}
# (root-only) in the AMI or from your bootstrap (e.g. AWS Secrets Manager with the instance profile)
# before this script runs. The unit passes them to the agent with systemd's LoadCredential=.
CREDENTIALS=/run/credentials/autoscaler-agent.service

set -euo pipefail
umask 022
log() { printf 'autoscaler user-data: %s\n' "$*" >&2; }

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# Node >= 20 at /usr/bin/node (the unit's ExecStart). AL2023 ships namespaced packages
# (nodejs22 installs /usr/bin/node-22) and points /usr/bin/node at one through `alternatives`.
if [ "$(node_major)" -lt 20 ]; then
  if command -v dnf >/dev/null; then
    dnf install -y nodejs22 nodejs22-npm || dnf install -y nodejs20 nodejs20-npm
    for v in 22 20; do
      if [ -x "/usr/bin/node-${v}" ]; then
        alternatives --set node "/usr/bin/node-${v}" 2>/dev/null || ln -sf "/usr/bin/node-${v}" /usr/bin/node
        break
      fi
    done
  elif command -v apt-get >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
  fi
fi
if [ "$(node_major)" -lt 20 ] || [ ! -x /usr/bin/node ]; then
  log "need Node >= 20 at /usr/bin/node, found $(command -v node || echo none) $(node --version 2>/dev/null || true)"
  exit 1
fi

if [ -n "${AUTOSCALER_URL}" ]; then
  AUTOSCALER_TARBALL="$(mktemp /tmp/autoscaler.XXXXXX.tgz)"
  curl -fsSL --retry 5 --retry-connrefused -o "${AUTOSCALER_TARBALL}" "${AUTOSCALER_URL}"
fi
if [ ! -s "${AUTOSCALER_TARBALL}" ]; then
  log "no package at ${AUTOSCALER_TARBALL}: set AUTOSCALER_TARBALL or AUTOSCALER_URL"
  exit 1
fi

install -d -m 0755 /opt/autoscaler /etc/autoscaler
tar -xzf "${AUTOSCALER_TARBALL}" -C /opt/autoscaler --strip-components=1 --no-same-owner
# `npm pack` leaves node_modules (and package-lock.json) out. A tarball built with its
# node_modules on the same OS and CPU skips this step (faster boots, no registry access).
if [ ! -d /opt/autoscaler/node_modules ]; then
  (cd /opt/autoscaler && npm install --omit=dev --no-audit --no-fund --no-update-notifier)
fi

# systemd reads EnvironmentFile= as root before it switches to the agent's dynamic user: 0600.
cat > /etc/autoscaler/agent.env <<ENV
AGENT_SERVER=${MONITOR_SERVER}
AGENT_GROUP=${GROUP_ID}
AGENT_IDENTITY=imds
AGENT_SIMULATE=${AGENT_SIMULATE}
AGENT_TLS_CA=${CREDENTIALS}/ca.pem
AGENT_TLS_CERT=${CREDENTIALS}/agent.pem
AGENT_TLS_KEY=${CREDENTIALS}/agent-key.pem
LOG_LEVEL=info
ENV
chmod 0600 /etc/autoscaler/agent.env

install -m 0644 /opt/autoscaler/deploy/systemd/autoscaler-agent.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now autoscaler-agent.service
log "agent started for group ${GROUP_ID}, reporting to ${MONITOR_SERVER}"
