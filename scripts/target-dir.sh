#!/bin/sh
# Prints cargo's target directory for this crate, as `cargo metadata` reports
# it: CARGO_TARGET_DIR, else build.target-dir of a cargo config
# (CARGO_BUILD_TARGET_DIR), else ./target. Used by deb.sh and install.sh.
# CARGO names the cargo to ask (default: cargo on PATH).
set -eu
cd "$(dirname "$0")/.."
meta=$("${CARGO:-cargo}" metadata --format-version 1 --no-deps) || {
  echo "target-dir.sh: cargo metadata failed" >&2
  exit 1
}
dir=$(printf '%s\n' "$meta" | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$dir" ] || { echo "target-dir.sh: no target_directory in cargo metadata" >&2; exit 1; }
printf '%s\n' "$dir"
