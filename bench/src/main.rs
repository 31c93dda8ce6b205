//! Benchmark runner.
fn main() {}
