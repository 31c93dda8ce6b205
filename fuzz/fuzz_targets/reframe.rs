//! Fuzz target: `switchboard_fuzz_targets::reframe` (the body and what it asserts live there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz_targets::reframe(data));
