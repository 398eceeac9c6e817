#!/bin/sh
# Lints openapi/openapi.json with @redocly/cli (recommended rules, strict:
# redocly.yaml) and @stoplight/spectral-cli (spectral:oas: .spectral.yaml);
# fails on any error or warning of either. Needs Node.js >= 20.19 and npx
# (.ci/run runs it when the machine has them); the versions are pinned here.
set -eu
cd "$(dirname "$0")/.."
REDOCLY=@redocly/cli@2.77.0
SPECTRAL=@stoplight/spectral-cli@6.16.3
npx --yes "$REDOCLY" lint --config redocly.yaml openapi/openapi.json
npx --yes "$SPECTRAL" lint --ruleset .spectral.yaml --fail-severity=warn openapi/openapi.json
