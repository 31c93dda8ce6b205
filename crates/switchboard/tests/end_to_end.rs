//! End-to-end tests: the built `switchboard` binary on 127.0.0.1:0, driven over raw
//! HTTP/1.1 the way a Socket.IO long-polling client talks to it. Modules are named by
//! the behaviour they check.

mod end_to_end {
    pub(crate) mod backend;
    pub(crate) mod client;
    pub(crate) mod socket;
    pub(crate) mod support;

    mod admin;
    pub(crate) mod api;
    mod auth;
    mod cli;
    mod cluster;
    mod config_precedence;
    mod events;
    mod health_metrics;
    mod hooks;
    mod limits;
    mod logging;
    mod namespaces;
    mod rooms;
    mod rules_config;
    mod shutdown;
    mod static_files;
}
