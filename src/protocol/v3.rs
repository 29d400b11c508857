//! The v3 API's machine-readable contract beside its texts: the error kinds a client acts on,
//! the quantity cap, and the data value a tenant's failure report leaves on a node.
//!
//! An error answer keeps its `{"detail": …}` body, worded as the original's clients expect;
//! what it *means* travels in the [`ERROR_KIND_HEADER`] header, so a client decides from the
//! kind and a reworded detail changes nothing (`docs/v3-api.md` §3).

/// The response header that names an error answer's [`ErrorKind`] (`Duffy-Error-Kind` on
/// the wire; header names are case-insensitive).
pub const ERROR_KIND_HEADER: &str = "duffy-error-kind";

/// The largest number of nodes one number of the v3 API may count: a spec's `quantity` and
/// a tenant's `node_quota` (the original's 32-bit integer columns; `docs/deviations.md` D#19).
pub const MAX_QUANTITY: i64 = i32::MAX as i64;

/// `data.error.detail` of a node its tenant reported broken (`"fail_nodes": true`, the v2
/// `/Node/fail`); the v2 inventory shows such a node as `Fail`.
pub const REPORTED_FAILED: &str = "node reported failed by tenant";

/// What a v3 error answer means, whatever its `detail` says.
///
/// Each kind belongs to one status ([`ErrorKind::status`]); a status has one or more kinds.
/// Matching on it exhaustively makes every decision that depends on it be revisited when a
/// kind is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 401: no credentials, unreadable ones, or unknown ones.
    Unauthenticated,
    /// 403: the requester may not do this (a retired tenant, another tenant's session, an
    /// admin action by a non-admin).
    Forbidden,
    /// 403: the tenant's node quota would be exceeded.
    QuotaExceeded,
    /// 404: no such resource (or the requester may not learn that there is one).
    NotFound,
    /// 409: the resource is not in a state that allows this, or a name is taken.
    Conflict,
    /// 422: the request's fields are invalid (a pydantic-style list).
    Invalid,
    /// 422: a pool has too few ready nodes for a spec (or is unknown or abstract).
    NoNodes,
    /// 422: the session is retired and can no longer change.
    SessionRetired,
    /// 422: the tenant is retired.
    TenantRetired,
    /// 422: any other request that cannot be carried out as asked.
    Unprocessable,
    /// 500: a fault of the server.
    Internal,
    /// 503: an admin paused allocations (of the service or of a pool); retry later.
    Paused,
    /// 503: the nodes could not be handed over right now (contextualization failed); retry.
    Unavailable,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::Unauthenticated,
        ErrorKind::Forbidden,
        ErrorKind::QuotaExceeded,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Invalid,
        ErrorKind::NoNodes,
        ErrorKind::SessionRetired,
        ErrorKind::TenantRetired,
        ErrorKind::Unprocessable,
        ErrorKind::Internal,
        ErrorKind::Paused,
        ErrorKind::Unavailable,
    ];

    /// The kind's value in the header.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::QuotaExceeded => "quota-exceeded",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Invalid => "invalid",
            ErrorKind::NoNodes => "no-nodes",
            ErrorKind::SessionRetired => "session-retired",
            ErrorKind::TenantRetired => "tenant-retired",
            ErrorKind::Unprocessable => "unprocessable",
            ErrorKind::Internal => "internal",
            ErrorKind::Paused => "paused",
            ErrorKind::Unavailable => "unavailable",
        }
    }

    /// The kind a header value names (exactly, as [`ErrorKind::name`] writes it).
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The HTTP status the v3 API answers with this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden | ErrorKind::QuotaExceeded => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Invalid
            | ErrorKind::NoNodes
            | ErrorKind::SessionRetired
            | ErrorKind::TenantRetired
            | ErrorKind::Unprocessable => 422,
            ErrorKind::Internal => 500,
            ErrorKind::Paused | ErrorKind::Unavailable => 503,
        }
    }

    /// What the status alone says, for an answer without the header (another server, a
    /// proxy): the plainest kind of that status, or `None` for a status the v3 API never
    /// answers an error with (a proxy's 429 or 502). A 403 is then [`Forbidden`], a 422
    /// [`Unprocessable`] and a 503 [`Unavailable`]: the finer kinds need the header.
    ///
    /// [`Forbidden`]: ErrorKind::Forbidden
    /// [`Unprocessable`]: ErrorKind::Unprocessable
    /// [`Unavailable`]: ErrorKind::Unavailable
    pub fn from_status(status: u16) -> Option<ErrorKind> {
        match status {
            401 => Some(ErrorKind::Unauthenticated),
            403 => Some(ErrorKind::Forbidden),
            404 => Some(ErrorKind::NotFound),
            409 => Some(ErrorKind::Conflict),
            422 => Some(ErrorKind::Unprocessable),
            500 => Some(ErrorKind::Internal),
            503 => Some(ErrorKind::Unavailable),
            _ => None,
        }
    }

    /// The kind of an error answer with `status` and, if it had one, the header's value:
    /// the named kind when it is known and belongs to that status, else what the status
    /// alone says ([`ErrorKind::from_status`]). A kind that does not fit the status (a proxy
    /// that replaced the answer but kept its headers) is not believed.
    ///
    /// An answer with no header at all comes from a server that names no kinds: the
    /// original Duffy 3.4.0 behind `duffy serve-legacy`. Its texts are those of a finished
    /// release and will never change, so for it alone the two kinds the v2 layer must tell
    /// apart from their status are read from them ([`ErrorKind::of_original`]). Our own
    /// server always names the kind, so rewording our texts never changes a decision.
    pub fn of_answer(status: u16, header: Option<&str>, detail: &str) -> Option<ErrorKind> {
        match header {
            Some(name) => ErrorKind::from_name(name.trim())
                .filter(|kind| kind.status() == status)
                .or_else(|| ErrorKind::from_status(status)),
            None => {
                ErrorKind::of_original(status, detail).or_else(|| ErrorKind::from_status(status))
            }
        }
    }

    /// The finer kinds of the original Duffy 3.4.0's error answers, which carry no header:
    /// `422 can't reserve nodes: …` (no ready node: a v2 client should wait and retry) and
    /// `403 quota exceeded: …`. The one place where a detail's wording is read, and only
    /// for a server that names no kinds.
    fn of_original(status: u16, detail: &str) -> Option<ErrorKind> {
        match status {
            422 if detail.starts_with("can't reserve nodes") => Some(ErrorKind::NoNodes),
            403 if detail.starts_with("quota exceeded") => Some(ErrorKind::QuotaExceeded),
            _ => None,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.name()), Some(kind));
            assert!(seen.insert(kind.name()), "{kind}");
            assert!(
                kind.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{kind}"
            );
        }
        assert_eq!(ErrorKind::from_name("No-Nodes"), None);
        assert_eq!(ErrorKind::from_name(""), None);
    }

    #[test]
    fn the_status_alone_gives_the_plainest_kind_of_that_status() {
        for kind in ErrorKind::ALL {
            let plain = ErrorKind::from_status(kind.status()).unwrap();
            assert_eq!(plain.status(), kind.status(), "{kind}");
        }
        assert_eq!(ErrorKind::from_status(422), Some(ErrorKind::Unprocessable));
        assert_eq!(ErrorKind::from_status(403), Some(ErrorKind::Forbidden));
        assert_eq!(ErrorKind::from_status(503), Some(ErrorKind::Unavailable));
        for status in [200, 201, 400, 405, 413, 429, 502, 504] {
            assert_eq!(ErrorKind::from_status(status), None, "{status}");
        }
    }

    #[test]
    fn the_header_is_believed_only_when_it_fits_the_status() {
        let of = |status, header| ErrorKind::of_answer(status, header, "can't reserve nodes: x");
        assert_eq!(of(422, Some("no-nodes")), Some(ErrorKind::NoNodes));
        assert_eq!(
            of(403, Some("quota-exceeded")),
            Some(ErrorKind::QuotaExceeded)
        );
        assert_eq!(of(503, Some(" paused ")), Some(ErrorKind::Paused));
        // An unknown kind (a newer server), or one of another status: the status alone,
        // whatever the detail says.
        assert_eq!(
            of(422, Some("out-of-nodes")),
            Some(ErrorKind::Unprocessable)
        );
        assert_eq!(of(502, Some("no-nodes")), None);
        assert_eq!(of(403, Some("no-nodes")), Some(ErrorKind::Forbidden));
        assert_eq!(of(429, None), None);
        assert_eq!(
            of(422, Some("unprocessable")),
            Some(ErrorKind::Unprocessable)
        );
    }

    #[test]
    fn without_a_header_the_original_servers_two_texts_are_read() {
        let of = |status, detail| ErrorKind::of_answer(status, None, detail);
        let reserve = "can't reserve nodes: quantity=2 pool='p'";
        let quota = "quota exceeded: requested nodes (3) + current allocation (9) = 12 > 10";
        assert_eq!(of(422, reserve), Some(ErrorKind::NoNodes));
        assert_eq!(of(403, quota), Some(ErrorKind::QuotaExceeded));
        // Only with the status the original gave them.
        assert_eq!(of(403, reserve), Some(ErrorKind::Forbidden));
        assert_eq!(of(422, quota), Some(ErrorKind::Unprocessable));
        assert_eq!(
            of(422, "session 3 is retired"),
            Some(ErrorKind::Unprocessable)
        );
        assert_eq!(of(503, reserve), Some(ErrorKind::Unavailable));
        // A server that names kinds is never second-guessed by its wording.
        assert_eq!(
            ErrorKind::of_answer(422, Some("unprocessable"), reserve),
            Some(ErrorKind::Unprocessable)
        );
    }
}
