#!/usr/bin/env bash
# Builds tests/argo-health (Argo CD's way of running Lua health checks: gopher-lua, the version
# Argo CD pins) from Go modules, cached. Prints the binary's path.
set -euo pipefail
exec "$(dirname "$0")/go-tool.sh" argo-health "github.com/yuin/gopher-lua@${GOPHER_LUA_VERSION:-v1.1.1}" \
  "sigs.k8s.io/yaml@${SIGS_YAML_VERSION:-v1.4.0}"
