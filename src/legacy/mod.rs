//! The legacy v2 API (`/Node/get`, `/Node/done`, `/Node/fail`, `/Inventory`) and the
//! harness that replays recorded v2 traffic against a server to prove a migration safe.

pub mod replay;
