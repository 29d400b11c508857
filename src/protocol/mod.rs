//! What both ends of Duffy's two HTTP protocols agree on, in one place below every layer that
//! speaks them.
//!
//! The v3 server ([`crate::api`], [`crate::engine`]) and its typed client ([`crate::client`])
//! share [`v3`]: the error kinds, the quantity cap, the data a v2 client reads back. The v2
//! layer ([`crate::legacy`]) and the replay tool ([`crate::replay`]) share [`v2`]: the
//! endpoints and the answer texts old clients recognise. This module imports nothing else of
//! the crate, so any layer may use it without reaching into another.

pub mod v2;
pub mod v3;
