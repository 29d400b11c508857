//! The v3 resources, one module each.

pub mod nodes;
pub mod pools;
pub mod service;
pub mod sessions;
pub mod tenants;
