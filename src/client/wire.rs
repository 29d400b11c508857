//! The v3 shapes as a client reads and writes them.
//!
//! Reading is lenient: unknown fields are ignored and optional ones default, so a newer
//! server (or the original) does not break the client. Only what callers use is typed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One entry of `nodes_specs` in `POST /sessions`.
#[derive(Debug, Clone, Serialize)]
pub struct NodesSpec {
    /// How many (first, as the original client sends it).
    pub quantity: i64,
    /// The pool to take nodes from.
    pub pool: String,
}

/// The body of `PUT /sessions/{id}`; unset fields are left out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionUpdate {
    /// `false` retires the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// An absolute time or a signed delta such as `+6h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Ours: the nodes were reported failed and must never be reused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_nodes: Option<bool>,
}

/// A pool as `GET /pools` and `GET /pools/{name}` show it.
#[derive(Debug, Clone, Deserialize)]
pub struct Pool {
    /// Pool name.
    pub name: String,
    /// How many ready nodes the pool keeps; `None` for pools that are not filled.
    #[serde(rename = "fill-level", default)]
    pub fill_level: Option<i64>,
}

/// The tenant a session belongs to (anonymous readers see only these two fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantRef {
    /// Tenant id.
    pub id: i64,
    /// Tenant name.
    pub name: String,
}

/// A session.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    /// Session id: the v2 `ssid` in decimal.
    pub id: i64,
    /// `false` once retired.
    #[serde(default)]
    pub active: bool,
    /// When it expires, as the server renders it.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Its tenant.
    pub tenant: TenantRef,
    /// Its nodes.
    #[serde(default)]
    pub nodes: Vec<SessionNode>,
}

/// A node as part of a session.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionNode {
    /// Node id.
    pub id: i64,
    /// Full hostname, once known.
    #[serde(default)]
    pub hostname: Option<String>,
    /// IP address, once known.
    #[serde(default)]
    pub ipaddr: Option<String>,
    /// Its pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Its state; `None` once the session is retired.
    #[serde(default)]
    pub state: Option<String>,
}

/// A node as `GET /nodes` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Node {
    /// Node id.
    pub id: i64,
    /// Full hostname, once known.
    #[serde(default)]
    pub hostname: Option<String>,
    /// IP address, once known.
    #[serde(default)]
    pub ipaddr: Option<String>,
    /// Its pool, `None` once it left it.
    #[serde(default)]
    pub pool: Option<String>,
    /// Its state (`ready`, `deployed`, …).
    pub state: String,
    /// How often it was handed out (ours; 0 from servers that do not send it).
    #[serde(default)]
    pub used_count: i64,
    /// What the v2 layer reads of the node's data (the rest is skipped unparsed: an
    /// inventory reads thousands of nodes).
    #[serde(default)]
    pub data: NodeData,
}

/// The part of a node's `data` a client needs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeData {
    /// Set once the node failed or was reported failed: `{"failed_at", "detail"}`.
    #[serde(default)]
    pub error: Option<Value>,
    /// What a node imported from a v2 database kept of its v2 row.
    #[serde(default)]
    pub v2: V2Columns,
}

/// The columns of a v2 host (`data.v2` of an imported node) that v3 has no place for and
/// the v2 inventory shows. Only these four are read, the other keys are skipped unparsed;
/// a value that is not a string or a number reads as absent, and so does a `v2` that is
/// not an object: an odd import never makes a node listing unreadable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct V2Columns {
    /// `chassis`.
    pub chassis: Option<Scalar>,
    /// `distro`.
    pub distro: Option<Scalar>,
    /// `rel`.
    pub rel: Option<Scalar>,
    /// `console_port`.
    pub console_port: Option<Scalar>,
}

/// A string or a number, written back as it came.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Text(String),
    /// A number.
    Number(serde_json::Number),
}

impl Serialize for Scalar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scalar::Text(text) => s.serialize_str(text),
            Scalar::Number(number) => number.serialize(s),
        }
    }
}

/// A key of `data.v2`.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum V2Key {
    Chassis,
    Distro,
    Rel,
    ConsolePort,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for V2Columns {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient::<V2Columns>::default())
    }
}

/// `Option<Scalar>` read leniently: anything else is `None`.
struct MaybeScalar(Option<Scalar>);

impl<'de> Deserialize<'de> for MaybeScalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient::<MaybeScalar>::default())
    }
}

/// A visitor that takes any JSON value: what `T` can use of it, else `T`'s empty value.
struct Lenient<T>(std::marker::PhantomData<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(std::marker::PhantomData)
    }
}

/// What [`Lenient`] builds from each kind of value.
trait LenientValue: Sized {
    fn empty() -> Self;
    fn text(_: &str) -> Self {
        Self::empty()
    }
    fn number(_: serde_json::Number) -> Self {
        Self::empty()
    }
    fn map<'de, A: serde::de::MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Self::empty())
    }
}

impl LenientValue for MaybeScalar {
    fn empty() -> Self {
        MaybeScalar(None)
    }
    fn text(text: &str) -> Self {
        MaybeScalar(Some(Scalar::Text(text.to_owned())))
    }
    fn number(number: serde_json::Number) -> Self {
        MaybeScalar(Some(Scalar::Number(number)))
    }
}

impl LenientValue for V2Columns {
    fn empty() -> Self {
        V2Columns::default()
    }
    fn map<'de, A: serde::de::MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut columns = V2Columns::default();
        while let Some(key) = map.next_key::<V2Key>()? {
            let slot = match key {
                V2Key::Chassis => &mut columns.chassis,
                V2Key::Distro => &mut columns.distro,
                V2Key::Rel => &mut columns.rel,
                V2Key::ConsolePort => &mut columns.console_port,
                V2Key::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value::<MaybeScalar>()?.0;
        }
        Ok(columns)
    }
}

impl<'de, T: LenientValue> serde::de::Visitor<'de> for Lenient<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok(T::empty())
    }
    fn visit_i64<E>(self, v: i64) -> Result<T, E> {
        Ok(T::number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<T, E> {
        Ok(T::number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<T, E> {
        Ok(serde_json::Number::from_f64(v).map_or_else(T::empty, T::number))
    }
    fn visit_str<E>(self, v: &str) -> Result<T, E> {
        Ok(T::text(v))
    }
    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::empty())
    }
    fn visit_none<E>(self) -> Result<T, E> {
        Ok(T::empty())
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(T::empty())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::map(map)
    }
}

/// The body of an admin's `PUT /nodes/{id}` (ours).
#[derive(Debug, Clone, Serialize)]
pub struct NodeCommand {
    /// `downtime`, `recover`, `retire`, `provision` or `deprovision`.
    pub action: String,
    /// Why, recorded with the action.
    pub reason: String,
    /// The pool whose mechanism runs, when the node has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

/// The body of an admin's `PUT /service` or `PUT /pools/{name}` (ours).
#[derive(Debug, Clone, Serialize)]
pub struct PauseRequest {
    /// `true` pauses allocations, `false` resumes them.
    pub paused: bool,
    /// Why, recorded with the pause.
    pub reason: String,
}

/// A node held past the overtime threshold, as `GET /overtime` shows it (ours).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldNode {
    /// Node id.
    pub id: i64,
    /// Its hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Its address.
    #[serde(default)]
    pub ipaddr: Option<String>,
    /// Its pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// The session holding it.
    pub session_id: i64,
    /// The tenant holding it.
    pub tenant: TenantRef,
    /// When the session was granted.
    pub held_since: String,
    /// Whole minutes since then.
    pub held_minutes: i64,
}
