# Nimbus: the two commands of the quick start are `make run` and `make test`.
# `make test` is exactly what CI runs (.ci/run calls it).

CARGO ?= cargo
DIR ?= backup
LISTEN ?= 127.0.0.1:9090
DATA ?= nimbus-data

.PHONY: all build release run test fmt-check clippy layers unit encrypted update-test windows windows-test wine-test-if-installed bench screenshots dist dist-test clean

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --workspace

# Starts a server on the defaults and a client backing up $(DIR); Ctrl-C stops both.
# At the first start the server creates the account "admin" and shows its
# password once; the client of `make run` logs in with it (its token is kept
# in $(DATA)/make-run-client.json).
run: release
	@mkdir -p "$(DIR)" "$(DATA)"
	@set -u; out="$(DATA)/.make-run-stdout.$$$$"; \
	./target/release/nimbus-server --listen "$(LISTEN)" --data "$(DATA)" $(if $(wildcard dist/nimbus-client-*),--clients-dir dist) > "$$out" & srv=$$!; \
	trap 'kill $$srv $${cli:-} 2>/dev/null; rm -f "$$out"; wait 2>/dev/null; echo; echo "stopped"' INT TERM EXIT; \
	for i in $$(seq 50); do grep -q "^listening on" "$$out" 2>/dev/null && break; kill -0 $$srv 2>/dev/null || break; sleep 0.1; done; \
	if ! kill -0 $$srv 2>/dev/null; then echo "the server did not start (is $(LISTEN) in use? try make run LISTEN=127.0.0.1:9191)"; exit 1; fi; \
	sleep 0.3; password=$$(sed -n 's/^created the first account: user admin, password //p' "$$out"); rm -f "$$out"; \
	cfg="$(DATA)/make-run-client.json"; \
	if [ -n "$$password" ]; then \
		printf '%s\n' "$$password" | ./target/release/nimbus-client login --server "http://$(LISTEN)" --user admin --password-stdin --config "$$cfg" >/dev/null || exit 1; \
	fi; \
	if [ ! -f "$$cfg" ]; then echo "the client has no login; run: ./target/release/nimbus-client login --server http://$(LISTEN) --user NAME --config $$cfg"; exit 1; fi; \
	./target/release/nimbus-client --server "http://$(LISTEN)" --dir "$(DIR)" --config "$$cfg" --state "$(DATA)/make-run-client-state.json" & cli=$$!; \
	echo; \
	echo "Nimbus is running. Open http://$(LISTEN)/ in a browser."; \
	if [ -n "$$password" ]; then \
		echo "Log in as admin with password $$password (shown this once; change it with: ./target/release/nimbus-server --data $(DATA) user passwd admin)"; \
	else \
		echo "Log in as admin (the password was shown at the first run; set a new one with: ./target/release/nimbus-server --data $(DATA) user passwd admin)"; \
	fi; \
	echo "Files you put in $(DIR)/ are backed up within seconds (data in $(DATA)/). Ctrl-C stops both."; \
	echo; \
	wait $$srv

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The HTTP front's layers (server/src/http/mod.rs): no module imports one
# above it, and api/ and pages/ never import each other.
HTTP = server/src/http
layers:
	@bad=$$( \
	  grep -rnE 'http::(api|pages)|super::(api|pages)' $(HTTP)/api $(HTTP)/pages | grep -E 'pages/.*api|api/.*pages'; \
	  grep -rnE 'http::(auth|ctx|views|api|pages|router|pool|meter)' $(HTTP)/core; \
	  grep -rnE 'http::(ctx|views|api|pages|router|pool)' $(HTTP)/auth; \
	  grep -rnE 'http::(views|api|pages|router|pool)' $(HTTP)/ctx.rs $(HTTP)/meter.rs; \
	  grep -rnE 'http::(api|pages|router|pool)' $(HTTP)/views; \
	  grep -rnE 'http::(router|pool)|super::(router|pool)' $(HTTP)/api $(HTTP)/pages; \
	  grep -rn 'request::' $(HTTP)/core/body.rs $(HTTP)/core/form.rs; \
	  true); \
	if [ -n "$$bad" ]; then echo "imports against the layers of $(HTTP):"; echo "$$bad"; exit 1; fi

unit:
	$(CARGO) build --workspace
	$(CARGO) test --workspace

# The integration suite's core scenarios again with every test server
# encrypted at rest (NIMBUS_TEST_ENCRYPTION=1: tests/it/fixtures). Skipped
# here, and run in the plain pass only: the five tests that read the plain
# on-disk layout itself (blob files named by their hash, plain bytes).
ENCRYPTED_CORE = backup:: history:: download:: packing:: chunks:: uploads:: retention:: \
	crash:: catalog:: batch:: curl:: client_edges:: isolation:: old_data:: \
	policy::a_policy_change policy::a_locked_setting alerts::a_silent_machine \
	http_lint::conditional
PLAIN_LAYOUT_ONLY = --skip chunks::two_machines_share_chunks_and_check_names_a_damaged_chunk_or_manifest_by_file \
	--skip crash::kill_during_a_large_upload_then_restart_and_complete \
	--skip isolation::two_users_with_two_machines_each_see_only_their_own \
	--skip packing::cold_files_are_packed_and_served_transparently \
	--skip retention::check_read_data_finds_a_flipped_byte_in_hot_content_a_packed_frame_and_a_frame_index
encrypted:
	NIMBUS_TEST_ENCRYPTION=1 $(CARGO) test -p nimbus-server --test it -- $(ENCRYPTED_CORE) $(PLAIN_LAYOUT_ONLY)

test: fmt-check clippy layers unit encrypted update-test wine-test-if-installed

# Self-update end to end (server/tests/it/self_update.rs): two client
# builds that trust the test release key of server/tests/keys (never a
# release's), this version and the same code as version 9.9.9, copied
# aside; then the plain client is built again for everything else.
UPDATE_TEST = target/update-test
TEST_UPDATE_KEY = $(shell cat server/tests/keys/update-test.pub)
update-test:
	@mkdir -p $(UPDATE_TEST)
	NIMBUS_UPDATE_KEY=$(TEST_UPDATE_KEY) $(CARGO) build -p nimbus-client
	cp target/debug/nimbus-client $(UPDATE_TEST)/nimbus-client-old
	NIMBUS_UPDATE_KEY=$(TEST_UPDATE_KEY) NIMBUS_BUILD_VERSION=9.9.9 $(CARGO) build -p nimbus-client
	cp target/debug/nimbus-client $(UPDATE_TEST)/nimbus-client-new
	$(CARGO) build -p nimbus-client
	NIMBUS_UPDATE_OLD=$(CURDIR)/$(UPDATE_TEST)/nimbus-client-old NIMBUS_UPDATE_NEW=$(CURDIR)/$(UPDATE_TEST)/nimbus-client-new \
		$(CARGO) test -p nimbus-server --test it -- --ignored self_update::

# The Windows client: nimbus-client.exe for x86_64-pc-windows-gnu (needs
# `rustup target add x86_64-pc-windows-gnu` and Debian's
# gcc-mingw-w64-x86-64, which .ci/run installs).
WIN_TARGET = x86_64-pc-windows-gnu
WIN_EXE = target/$(WIN_TARGET)/release/nimbus-client.exe
WINE_HELPERS = target/wine-helpers
MINGW_CC = x86_64-w64-mingw32-gcc

windows:
	$(CARGO) build --release -p nimbus-client --target $(WIN_TARGET)
	@echo "built $(WIN_EXE)"

# Runs the .exe under Wine against the Linux server (server/tests/it/wine.rs).
# The two helpers are test scaffolding, never shipped: a stand-in for the
# ProcessPrng that Wine 8 lacks, and a program that holds a file open.
# The .exe under test trusts the test release key (as in update-test), and
# a copy built as 9.9.9 is what it updates itself to; $(WIN_EXE) is built
# plain again at the end.
WIN_TEST_OLD = $(UPDATE_TEST)/nimbus-client-old.exe
WIN_TEST_NEW = $(UPDATE_TEST)/nimbus-client-new.exe
windows-test:
	@mkdir -p $(WINE_HELPERS) $(UPDATE_TEST)
	$(MINGW_CC) -shared -O2 -o $(WINE_HELPERS)/bcryptprimitives.dll client/tests/wine/bcryptprimitives.c -ladvapi32
	$(MINGW_CC) -municode -O2 -o $(WINE_HELPERS)/holdopen.exe client/tests/wine/holdopen.c
	NIMBUS_UPDATE_KEY=$(TEST_UPDATE_KEY) NIMBUS_BUILD_VERSION=9.9.9 $(CARGO) build --release -p nimbus-client --target $(WIN_TARGET)
	cp $(WIN_EXE) $(WIN_TEST_NEW)
	NIMBUS_UPDATE_KEY=$(TEST_UPDATE_KEY) $(CARGO) build --release -p nimbus-client --target $(WIN_TARGET)
	cp $(WIN_EXE) $(WIN_TEST_OLD)
	$(MAKE) windows
	NIMBUS_WINDOWS_EXE=$(CURDIR)/$(WIN_TEST_OLD) NIMBUS_WINDOWS_EXE_NEW=$(CURDIR)/$(WIN_TEST_NEW) NIMBUS_WINE_DIR=$(CURDIR)/$(WINE_HELPERS) \
		$(CARGO) test -p nimbus-server --test it -- --ignored wine::
	NIMBUS_TEST_ENCRYPTION=1 NIMBUS_WINDOWS_EXE=$(CURDIR)/$(WIN_TEST_OLD) NIMBUS_WINE_DIR=$(CURDIR)/$(WINE_HELPERS) \
		$(CARGO) test -p nimbus-server --test it -- --ignored wine::the_windows_exe_backs_up

wine-test-if-installed:
	@if command -v wine >/dev/null 2>&1; then $(MAKE) windows-test; \
	else echo "wine is not installed: skipping the Windows client test (.ci/run installs it)"; fi

# Measures throughput, memory and catalog cost; writes docs/BENCHMARKS.md.
# The references: cp, sync, bzip2 and curl, and restic and borg (Debian's
# restic and borgbackup, installed here when missing).
bench:
	@command -v restic >/dev/null 2>&1 && command -v borg >/dev/null 2>&1 || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends restic borgbackup; }
	$(CARGO) build --release --workspace
	$(CARGO) bench -p nimbus-server --bench nimbus

# Release artifacts in dist/: static musl binaries of the server and the
# client for x86_64 and aarch64 Linux, the Windows client, .deb and .rpm
# packages of both, the server's container image and Synology package
# (server/packaging/deb.sh, rpm.sh, container.sh, spk.sh), SHA-256 sums
# (server/packaging/dist.sh says what it needs; .ci/run installs it).
dist:
	bash server/packaging/dist.sh
	bash server/packaging/deb.sh
	bash server/packaging/rpm.sh
	bash server/packaging/container.sh
	bash server/packaging/spk.sh

# Checks dist/: static and stripped, sums, --version, and the aarch64 pair
# backing up and restoring under qemu-aarch64-static.
dist-test:
	bash server/packaging/dist-test.sh

# Refreshes docs/screenshots/ (main pages at laptop and phone width, light
# and dark) with the browser tests, which need chromium and chromium-driver
# (see .ci/run).
screenshots:
	NIMBUS_SCREENSHOTS=$(CURDIR)/docs/screenshots $(CARGO) test -p nimbus-server --test it chromium::

clean:
	$(CARGO) clean
