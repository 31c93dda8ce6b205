//! Switchboard engine.
