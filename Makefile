# make            build the module (target/release/libmod_zorio_c2c.so)
# make install    copy it as mod_zorio_c2c.so into `pkg-config --variable=modulesdir freeswitch`
#                 (or MODDIR=...), plus the sample config if none (CONFDIR=...)
# make e2e        the end-to-end suites against an installed FreeSWITCH
MODDIR ?=
CONFDIR ?=
FREESWITCH_BIN ?= $(shell command -v freeswitch 2>/dev/null || echo /opt/freeswitch/bin/freeswitch)

.PHONY: all install e2e
all:
	cargo build --release

install: all
	scripts/install.sh $(MODDIR) $(CONFDIR)

e2e: all
	FREESWITCH_BIN=$(FREESWITCH_BIN) cargo test --release --test e2e_freeswitch --test e2e_webhooks_crash --test e2e_reload -- --nocapture
