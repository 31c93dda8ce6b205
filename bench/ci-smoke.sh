#!/usr/bin/env bash
# CI smoke run of the benchmark suite: tiny sizes, every server that can run here.
# Exits non-zero (one `FAIL server step: why` line each, see bench/README.md "CI") when
# Switchboard (protocol_fixture or `switchboard serve`) or the bare broadcaster cannot be
# prepared, fails to start, crashes, has a scenario error (a refused join or broadcast
# included) or a missing result, loses a connection or an event, leaves a broadcast
# unacked, fails a churn cycle, or records fewer/more latency samples
# than broadcasts × room size; or when the Node or socketioxide peer, once prepared,
# fails to start or crashes. A peer that cannot run here (no node, socketioxide not
# built) is skipped; a peer's scenario errors only warn.
# Counts are exact; never asserts on timings or rates.
#
# Debug profile on purpose: it reuses what `cargo test` already compiled, and timings do
# not matter here. protocol_fixture and the switchboard binary are built by the runner
# with the same profile.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --locked -p switchboard-bench -- smoke "$@"
