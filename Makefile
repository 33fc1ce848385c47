# failoverd — the two commands that matter:
#   make lab    failoverd against a local emulated two-region AWS
#   make test   every test, after installing what the tests need
.DEFAULT_GOAL := help
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help
help:
	@echo "make lab      run failoverd against a local emulated two-region AWS (config/lab.yaml)"
	@echo "make test     install test dependencies and run every test"
	@echo "make check    fmt, clippy"
	@echo "make build    release build"
	@echo "make bench    benchmarks"

.PHONY: deps
deps: ## tools the tests need: promtool/prometheus, the Python test bed (moto)
	scripts/install-test-deps.sh

.PHONY: test
test: deps check
	$(CARGO) build --all-targets --locked
	$(CARGO) test --locked --no-fail-fast
	.venv/bin/python -m pytest -q tests/support

.PHONY: check
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

.PHONY: build
build:
	$(CARGO) build --release --locked

.PHONY: bench
bench:
	$(CARGO) bench --locked

.PHONY: lab
lab:
	scripts/lab.sh
