# Nimbus: the two commands of the quick start are `make run` and `make test`.
# `make test` is exactly what CI runs (.ci/run calls it).

CARGO ?= cargo
DIR ?= backup
LISTEN ?= 127.0.0.1:9090
DATA ?= nimbus-data

.PHONY: all build release run test fmt-check clippy unit bench clean

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --workspace

# Starts a server on the defaults and a client backing up $(DIR); Ctrl-C stops both.
run: release
	@mkdir -p "$(DIR)"
	@set -u; \
	./target/release/nimbus-server --listen "$(LISTEN)" --data "$(DATA)" & srv=$$!; \
	trap 'kill $$srv $${cli:-} 2>/dev/null; wait 2>/dev/null; echo; echo "stopped"' INT TERM EXIT; \
	sleep 1; \
	if ! kill -0 $$srv 2>/dev/null; then echo "the server did not start (is $(LISTEN) in use? try make run LISTEN=127.0.0.1:9191)"; exit 1; fi; \
	./target/release/nimbus-client --server "http://$(LISTEN)" --dir "$(DIR)" --state "$(DATA)/make-run-client-state.json" & cli=$$!; \
	echo; \
	echo "Nimbus is running. Open http://$(LISTEN)/ in a browser."; \
	echo "Files you put in $(DIR)/ are backed up within seconds (data in $(DATA)/). Ctrl-C stops both."; \
	echo; \
	wait $$srv

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) build --workspace
	$(CARGO) test --workspace

test: fmt-check clippy unit

# Measures throughput, memory and catalog cost; writes docs/BENCHMARKS.md.
bench:
	$(CARGO) build --release --workspace
	$(CARGO) bench -p nimbus-server --bench nimbus

clean:
	$(CARGO) clean
