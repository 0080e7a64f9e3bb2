#!/bin/sh
# Answers like traefik/whoami: who served the request, which version, and what it was asked.
echo "Content-Type: text/plain"
echo ""
echo "Hostname: $(hostname)"
echo "Version: ${WHOAMI_VERSION}"
for a in $(ip -o -4 addr show 2>/dev/null | awk '{print $4}'); do echo "IP: $a"; done
echo "RemoteAddr: ${REMOTE_ADDR}"
echo "GET ${REQUEST_URI}"
