#!/bin/sh
# Builds the Debian package of the already built module, with dpkg-deb only:
#   scripts/deb.sh            -> TARGET/debian/freeswitch-mod-zorio-c2c_<version>_<arch>.deb
# TARGET is cargo's target directory (`cargo metadata`: CARGO_TARGET_DIR, a cargo
# config's build.target-dir, else ./target; see scripts/target-dir.sh).
# Settings (environment):
#   MODDIR   where the .so goes   default: `pkg-config --variable=modulesdir freeswitch`,
#                                 else /usr/lib/freeswitch/mod (Debian's FreeSWITCH packages)
#   CONFDIR  FreeSWITCH's conf dir default: `pkg-config --variable=confdir freeswitch`,
#                                 else /etc/freeswitch; the sample config goes into
#                                 CONFDIR/autoload_configs/ as a conffile (an upgrade
#                                 keeps an admin's edits)
#   SO       the module           default: TARGET/release/libmod_zorio_c2c.so (cargo build --release)
#   VERSION  package version      default: Cargo.toml's version
#   ARCH     package architecture default: `dpkg --print-architecture`
#   OUTDIR   where the .deb goes  default: TARGET/debian
#   COMPRESS dpkg-deb -Z          default: xz (gzip is faster, for tests)
# Prints the path of the .deb it wrote on its last line.
set -eu
cd "$(dirname "$0")/.."
PKG=freeswitch-mod-zorio-c2c
if [ -z "${SO:-}" ] || [ -z "${OUTDIR:-}" ]; then
  TARGET=$(scripts/target-dir.sh) || { echo "deb.sh: cannot tell cargo's target directory: set SO and OUTDIR" >&2; exit 1; }
fi
SO=${SO:-$TARGET/release/libmod_zorio_c2c.so}
CONF=conf/autoload_configs/zorio_c2c.conf.xml
pc() { pkg-config --variable="$1" freeswitch 2>/dev/null || true; }
MODDIR=${MODDIR:-$(pc modulesdir)}
MODDIR=${MODDIR:-/usr/lib/freeswitch/mod}
CONFDIR=${CONFDIR:-$(pc confdir)}
CONFDIR=${CONFDIR:-/etc/freeswitch}
VERSION=${VERSION:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)}
OUTDIR=${OUTDIR:-$TARGET/debian}
COMPRESS=${COMPRESS:-xz}

die() { echo "deb.sh: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found: install dpkg (Debian, Ubuntu)"
ARCH=${ARCH:-$(dpkg --print-architecture 2>/dev/null || true)}
[ -n "$ARCH" ] || die "cannot tell the architecture: set ARCH (e.g. amd64)"
[ -f "$SO" ] || die "$SO not found: run cargo build --release first"
[ -n "$VERSION" ] || die "no version in Cargo.toml: set VERSION"
case "$MODDIR$CONFDIR" in *" "*) die "MODDIR and CONFDIR must not contain spaces" ;; esac
case "$MODDIR" in /*) ;; *) die "MODDIR must be absolute: $MODDIR" ;; esac
case "$CONFDIR" in /*) ;; *) die "CONFDIR must be absolute: $CONFDIR" ;; esac

mkdir -p "$OUTDIR"
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/zorio-c2c-deb.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT INT TERM
DOC=usr/share/doc/$PKG

install -d "$ROOT/DEBIAN" "$ROOT$MODDIR" "$ROOT$CONFDIR/autoload_configs" "$ROOT/$DOC"
install -m 0644 "$SO" "$ROOT$MODDIR/mod_zorio_c2c.so"
# Debug info stays in target/ (it is most of the file).
if command -v strip >/dev/null 2>&1; then strip --strip-debug "$ROOT$MODDIR/mod_zorio_c2c.so"; fi
install -m 0644 "$CONF" "$ROOT$CONFDIR/autoload_configs/zorio_c2c.conf.xml"
install -m 0644 README.md "$ROOT/$DOC/README.md"
install -m 0644 docs/freeswitch-module.md "$ROOT/$DOC/freeswitch-module.md"
# Monitoring an operator imports: Grafana dashboard, Prometheus rules and
# their promtool tests (docs/metrics.md, shipped beside them).
SHARE=usr/share/$PKG
install -d "$ROOT/$SHARE/grafana" "$ROOT/$SHARE/prometheus"
install -m 0644 conf/grafana/zorio_c2c_dashboard.json "$ROOT/$SHARE/grafana/"
install -m 0644 conf/prometheus/zorio_c2c_rules.yml conf/prometheus/zorio_c2c_rules.test.yml "$ROOT/$SHARE/prometheus/"
install -m 0644 docs/metrics.md "$ROOT/$DOC/metrics.md"
cat > "$ROOT/$DOC/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mod_zorio_c2c
License: MIT
COPYRIGHT

echo "$CONFDIR/autoload_configs/zorio_c2c.conf.xml" > "$ROOT/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat > "$ROOT/DEBIAN/control" <<CONTROL
Package: $PKG
Version: $VERSION
Architecture: $ARCH
Maintainer: Zorio PBX <pbx@zorio.invalid>
Installed-Size: $SIZE
Depends: libc6, libgcc-s1
Enhances: freeswitch
Section: comm
Priority: optional
Description: FreeSWITCH click-to-call module (Zorio PBX contract)
 mod_zorio_c2c places click-to-call calls for a CRM: it rings the agent,
 then dials the customer over a trunk chosen by least-cost routing, bridges
 them, and reports every step as a signed webhook. It serves an HTTP API
 and the fs_cli command c2c.
 .
 Module: $MODDIR/mod_zorio_c2c.so
 Sample config: $CONFDIR/autoload_configs/zorio_c2c.conf.xml
 Load it: add <load module="mod_zorio_c2c"/> to modules.conf.xml, or
 fs_cli -x 'load mod_zorio_c2c'.
CONTROL
(cd "$ROOT" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"
chmod -R u+rwX,go+rX,go-w "$ROOT"

DEB="$OUTDIR/${PKG}_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Z"$COMPRESS" --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
