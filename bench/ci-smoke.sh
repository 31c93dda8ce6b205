#!/usr/bin/env bash
# CI smoke run of the benchmark suite: a few seconds, tiny sizes, every server that can
# start. Exits non-zero only when the load generator itself is broken (the bare
# broadcaster fails); a peer that cannot start (no node, socketioxide not built) is
# reported as skipped. Never asserts on timings.
#
# Debug profile on purpose: it reuses what `cargo test` already compiled, and timings do
# not matter here. protocol_fixture is built by the runner with the same profile.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --locked -p switchboard-bench -- smoke "$@"
