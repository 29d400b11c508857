//! The real clients' virtualenvs (`real-clients.md` §1): python-cicoclient 0.4.7 in
//! `.venv-compat/cico` and `duffy[client]` 3.4.0 in `.venv-compat/duffy`, installed by the
//! shared installer in `tests/common/venv.rs`.

use std::path::PathBuf;

use tokio::sync::OnceCell;

#[path = "../../tests/common/venv.rs"]
mod installer;

use installer::{Venv, cached};

/// python-cicoclient 0.4.7 (`cico`).
const CICO: Venv = Venv {
    name: "cico",
    what: "python-cicoclient==0.4.7",
    check: &["bin/cico", "--version"],
    expect: "cico 0.4.7",
    requirements: &[
        "python-cicoclient==0.4.7",
        "cliff==4.17.0",
        "cmd2==4.3.1",
        "requests==2.34.2",
        "urllib3==2.8.0",
        "six==1.17.0",
        "pbr==7.1.3",
        "stevedore==5.10.0",
        "PrettyTable==3.18.0",
        "PyYAML==6.0.3",
    ],
};

/// `duffy[client]` 3.4.0: the original `duffy client`. The check imports the client part,
/// which `duffy --version` alone would not need.
const DUFFY: Venv = Venv {
    name: "duffy",
    what: "duffy[client]==3.4.0",
    check: &[
        "bin/python",
        "-c",
        "import duffy.client, duffy.version as v; print('duffy', v.__version__)",
    ],
    expect: "duffy 3.4.0",
    requirements: &[
        "duffy[client]==3.4.0",
        "httpx==0.28.1",
        "pydantic==2.14.3",
        "click==8.5.1",
        "pyxdg==0.28",
        "PyYAML==6.0.3",
    ],
};

/// The outcome of the one installation attempt of this run, shared by all tests.
static CICO_VENV: OnceCell<Result<PathBuf, String>> = OnceCell::const_new();
/// The same for the duffy client.
static DUFFY_VENV: OnceCell<Result<PathBuf, String>> = OnceCell::const_new();

/// The cico virtualenv's folder, installed on first use; panics with the cause (and the way
/// to skip these tests) when it cannot be installed.
pub async fn cico_venv() -> PathBuf {
    installed(&CICO, &CICO_VENV).await
}

/// The `duffy[client]` 3.4.0 virtualenv's folder, installed on first use; panics like
/// [`cico_venv`]. Its `bin/duffy` is the original client: always call it by this full path.
pub async fn duffy_venv() -> PathBuf {
    installed(&DUFFY, &DUFFY_VENV).await
}

async fn installed(
    venv: &'static Venv,
    cell: &'static OnceCell<Result<PathBuf, String>>,
) -> PathBuf {
    cached(venv, cell).await.unwrap_or_else(|cause| {
        panic!(
            "cannot install the real {} for the compat tests: {cause}\n\
             Set DUFFY_SKIP_REAL_CLIENTS=1 to skip the compat tests knowingly.",
            venv.what
        )
    })
}
