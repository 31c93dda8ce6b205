//! switchboard binary.
fn main() {}
