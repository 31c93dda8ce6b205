//! End-to-end tests: the built `switchboard` binary on 127.0.0.1:0, driven over raw
//! HTTP/1.1 the way a Socket.IO long-polling client talks to it. Modules are named by
//! the behaviour they check.

mod end_to_end {
    pub(crate) mod client;
    pub(crate) mod support;

    mod cli;
    mod config_precedence;
    mod health_metrics;
    mod logging;
    mod namespaces;
    mod shutdown;
}
