#!/usr/bin/env bash
# Builds tests/kstatus (kstatus itself, sigs.k8s.io/cli-utils, computing Flux's and kpt's view of
# an object's health) from Go modules, cached. Prints the binary's path.
set -euo pipefail
exec "$(dirname "$0")/go-tool.sh" kstatus "sigs.k8s.io/cli-utils@${CLI_UTILS_VERSION:-v0.37.2}"
