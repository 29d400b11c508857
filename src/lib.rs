//! Duffy hands CI jobs freshly installed test machines.
//!
//! A tenant asks for a *session* of nodes from one or more *pools*; background jobs keep
//! each pool provisioned up to its fill level, so nodes are handed out at once. This crate
//! is a Rust reimplementation of the original (Python) Duffy, compatible with its clients.
//!
//! A tour, in the order data flows:
//! * [`config`]: discovery, deep merge and validation of the YAML configuration;
//! * [`http`]: the HTTP plumbing both servers share (serving, request ids, access log,
//!   rejections, the Prometheus text);
//! * [`api`]: the v3 REST API (warp): filters extract, handlers decide;
//! * [`engine`]: sessions, quotas, the node life cycle and the background [`engine::jobs`];
//! * [`store`]: SQLite or PostgreSQL, one schema, SQL beside the function that runs it;
//! * [`mechanisms`]: what creates and destroys machines (`noop` and `ansible`);
//! * [`contextualize`]: pushing a tenant's SSH key onto its nodes;
//! * [`legacy`]: the v2 API of old CI jobs, turned into v3 calls over HTTP through
//!   [`client`], the typed v3 client;
//! * [`protocol`]: what both ends of each protocol agree on (v3 error kinds and limits, v2
//!   endpoints and answer texts);
//! * [`replay`]: recorded v2 traffic replayed against a server (`duffy replay`);
//! * [`app`]: everything assembled on a listener; [`cli`]: the `duffy` command;
//!   [`bench`]: the load benchmark.

pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod contextualize;
pub mod engine;
pub mod http;
pub mod import;
pub mod legacy;
pub mod mechanisms;
pub mod metrics;
pub mod protocol;
pub mod replay;
pub mod store;
pub mod templates;
