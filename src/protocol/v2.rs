//! The v2 protocol's vocabulary: its endpoints and the answer texts old clients act on
//! (`docs/legacy-v2.md` §5).

/// The text that makes `cico node get` and scripts wait and retry, as v2 sent it (plain
/// text, not JSON).
pub const INSUFFICIENT: &str = "Insufficient Nodes in READY State";
/// The text answered when the v3 API cannot be asked; not JSON, so clients retry.
pub const UNAVAILABLE: &str = "Duffy API unavailable";
/// How every hard `/Node/get` failure begins (a JSON string: clients give up).
pub const ALLOCATION_FAILED: &str = "Failed to allocate nodes";

/// The v2 endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/Node/get`.
    NodeGet,
    /// `/Node/done`.
    NodeDone,
    /// `/Node/fail`.
    NodeFail,
    /// `/Inventory`.
    Inventory,
    /// `/NodeSetAdmin/<id>`.
    NodeSetAdmin,
    /// `/NodeRecover/<id>`.
    NodeRecover,
    /// `/PauseService`.
    PauseService,
    /// `/ResumeService`.
    ResumeService,
    /// `/Overtime`.
    Overtime,
    /// `/Help`.
    Help,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 10] = [
        Endpoint::NodeGet,
        Endpoint::NodeDone,
        Endpoint::NodeFail,
        Endpoint::Inventory,
        Endpoint::NodeSetAdmin,
        Endpoint::NodeRecover,
        Endpoint::PauseService,
        Endpoint::ResumeService,
        Endpoint::Overtime,
        Endpoint::Help,
    ];

    /// The path as v2 spelled it, without the `/<id>` of the admin node paths (the metrics
    /// label).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::NodeGet => "/Node/get",
            Endpoint::NodeDone => "/Node/done",
            Endpoint::NodeFail => "/Node/fail",
            Endpoint::Inventory => "/Inventory",
            Endpoint::NodeSetAdmin => "/NodeSetAdmin",
            Endpoint::NodeRecover => "/NodeRecover",
            Endpoint::PauseService => "/PauseService",
            Endpoint::ResumeService => "/ResumeService",
            Endpoint::Overtime => "/Overtime",
            Endpoint::Help => "/Help",
        }
    }

    /// The endpoint whose [`path`](Endpoint::path) is exactly `path`.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_back() {
        for endpoint in Endpoint::ALL {
            assert_eq!(Endpoint::from_path(endpoint.path()), Some(endpoint));
        }
        for other in ["/node/get", "/Node/get/", "/NodeSetAdmin/3", "", "/"] {
            assert_eq!(Endpoint::from_path(other), None, "{other}");
        }
    }
}
