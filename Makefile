# make            build the module (TARGET/release/libmod_zorio_c2c.so; TARGET: cargo's target
#                 directory, `scripts/target-dir.sh`: CARGO_TARGET_DIR, build.target-dir, else target)
# make install    copy it as mod_zorio_c2c.so into `pkg-config --variable=modulesdir freeswitch`
#                 (or MODDIR=...), plus the sample config if none (CONFDIR=...)
# make deb        TARGET/debian/freeswitch-mod-zorio-c2c_<version>_<arch>.deb: the module into
#                 MODDIR (default: pkg-config's modulesdir, else /usr/lib/freeswitch/mod), the
#                 sample config as a conffile into CONFDIR/autoload_configs (default: pkg-config's
#                 confdir, else /etc/freeswitch); needs dpkg-deb only (scripts/deb.sh)
# make e2e        the end-to-end suites against an installed FreeSWITCH
MODDIR ?=
CONFDIR ?=
FREESWITCH_BIN ?= $(shell command -v freeswitch 2>/dev/null || echo /opt/freeswitch/bin/freeswitch)

.PHONY: all install deb e2e
all:
	cargo build --release

install: all
	scripts/install.sh $(MODDIR) $(CONFDIR)

deb: all
	MODDIR=$(MODDIR) CONFDIR=$(CONFDIR) scripts/deb.sh

e2e: all
	FREESWITCH_BIN=$(FREESWITCH_BIN) cargo test --release --test e2e_freeswitch --test e2e_webhooks_crash --test e2e_reload --test e2e_cluster --test e2e_transfer --test e2e_ringback --test e2e_time_limit --test e2e_recording -- --nocapture --test-threads 1
