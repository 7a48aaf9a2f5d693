# The one entry point for people and CI. `make` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help run test bench scale tools fmt lint rust-test check-%

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z%_-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: ## Run the whole stack locally (emulated AWS seeded with demo data, worker, edge)
	@scripts/run-local.sh

test: ## Run every test and check (what CI runs)
	@scripts/test.sh

bench: ## Benchmark the edge beside nginx, pinned to one core each (not part of test; writes docs/benchmarks.md)
	@scripts/bench.sh

scale: ## Simulate scale-out: SSM calls against edge pods, before and after keyed routing (not part of test; writes docs/benchmarks/scale.*)
	@scripts/scale.sh

tools: ## Check every prerequisite and install the pinned tools into .tools/ (run and test do it on demand)
	@scripts/tools.sh all

fmt: ## Format the Rust code
	cargo fmt --all

lint: ## cargo fmt --check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

check-%: ## Run one check of the test command: rust, stack, manifests, argocd, terraform, monitoring, ci, api, faults, setup
	@scripts/test.sh $*
