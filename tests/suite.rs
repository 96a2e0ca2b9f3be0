//! The integration tests, one binary: each file beside this one is a module (run one with
//! `cargo test --release --test suite http_flv::`). One binary links the library once
//! instead of once per file: that was most of CI's compile time.

#[macro_use]
mod common;

mod admin;
mod admin_dashboard;
mod admin_security;
mod browser;
mod config;
mod control;
mod deep_nesting;
mod deploy;
mod docker;
mod enhanced_rtmp;
mod foreign_relays;
mod harness_nginx;
mod hostile;
mod http_flv;
mod http_hostile;
mod layers;
mod limits;
mod live_reflector;
mod load_tool;
mod metrics;
mod operations;
mod protocol_vectors;
mod reflector_client;
mod rtmps;
mod scale_out;
mod security;
mod shared_objects;
