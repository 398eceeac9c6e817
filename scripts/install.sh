#!/bin/sh
# Installs the built module into FreeSWITCH:
#   scripts/install.sh [MODDIR [CONFDIR]]
# MODDIR  default: `pkg-config --variable=modulesdir freeswitch`
# CONFDIR default: `pkg-config --variable=confdir freeswitch`
# Copies SO (default: TARGET/release/libmod_zorio_c2c.so, TARGET being cargo's
# target directory as `cargo metadata` reports it: CARGO_TARGET_DIR, a cargo
# config's build.target-dir, else ./target) as MODDIR/mod_zorio_c2c.so, and the
# sample conf/autoload_configs/zorio_c2c.conf.xml into CONFDIR/autoload_configs/
# unless one is already there. Build first: cargo build --release
# (with PKG_CONFIG_PATH or FREESWITCH_INCLUDE_DIR naming that switch's headers).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SO:-}" ]; then
  TARGET=$(scripts/target-dir.sh) || { echo "install.sh: cannot tell cargo's target directory: set SO" >&2; exit 1; }
  SO=$TARGET/release/libmod_zorio_c2c.so
fi
MODDIR=${1:-$(pkg-config --variable=modulesdir freeswitch 2>/dev/null || true)}
CONFDIR=${2:-$(pkg-config --variable=confdir freeswitch 2>/dev/null || true)}
if [ ! -f "$SO" ]; then
  echo "install.sh: $SO not found: run cargo build --release first" >&2
  exit 1
fi
if [ -z "$MODDIR" ]; then
  echo "install.sh: no MODDIR given and pkg-config knows no freeswitch (set PKG_CONFIG_PATH)" >&2
  exit 1
fi
mkdir -p "$MODDIR"
install -m 0755 "$SO" "$MODDIR/mod_zorio_c2c.so.new"
mv -f "$MODDIR/mod_zorio_c2c.so.new" "$MODDIR/mod_zorio_c2c.so"
echo "installed $MODDIR/mod_zorio_c2c.so"
if [ -n "$CONFDIR" ]; then
  mkdir -p "$CONFDIR/autoload_configs"
  if [ -e "$CONFDIR/autoload_configs/zorio_c2c.conf.xml" ]; then
    echo "kept existing $CONFDIR/autoload_configs/zorio_c2c.conf.xml"
  else
    install -m 0644 conf/autoload_configs/zorio_c2c.conf.xml "$CONFDIR/autoload_configs/zorio_c2c.conf.xml"
    echo "installed $CONFDIR/autoload_configs/zorio_c2c.conf.xml"
  fi
fi
echo "then: fs_cli -x 'load mod_zorio_c2c' (and add <load module=\"mod_zorio_c2c\"/> to modules.conf.xml)"
