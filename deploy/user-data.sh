#!/bin/bash
# EC2 user-data for a fleet instance: install Node and the agent, identify the instance through
# IMDSv2, point the agent at the monitor server, start it under systemd.
#
# Set before use (or template them from your launch template):
MONITOR_SERVER="${MONITOR_SERVER:-10.0.0.10:50051}"   # private address of the monitor server host
GROUP_ID="${GROUP_ID:-default}"
AUTOSCALER_TARBALL="${AUTOSCALER_TARBALL:-/opt/autoscaler.tgz}" # `npm pack` output, baked into the AMI or fetched from your artifact store
set -euo pipefail

imds() { # IMDSv2: a session token first, then the metadata path with it.
  local token
  token=$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
  curl -fsS -H "X-aws-ec2-metadata-token: ${token}" "http://169.254.169.254/latest/meta-data/$1"
}

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  dnf install -y nodejs22 2>/dev/null || dnf install -y nodejs
fi

mkdir -p /opt/autoscaler /etc/autoscaler
tar -xzf "${AUTOSCALER_TARBALL}" -C /opt/autoscaler --strip-components=1
(cd /opt/autoscaler && npm ci --omit=dev --no-audit --no-fund)

INSTANCE_ID=$(imds instance-id)
LOCAL_IP=$(imds local-ipv4)
cat > /etc/autoscaler/agent.env <<ENV
AGENT_SERVER=${MONITOR_SERVER}
AGENT_GROUP=${GROUP_ID}
AGENT_INSTANCE_ID=${INSTANCE_ID}
AGENT_ADDRESS=${LOCAL_IP}
LOG_LEVEL=info
ENV

install -m 0644 /opt/autoscaler/deploy/systemd/autoscaler-agent.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now autoscaler-agent.service
