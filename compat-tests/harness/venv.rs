//! The real clients' virtualenvs: python-cicoclient 0.4.7 in `.venv-compat/cico`,
//! `duffy[client]` 3.4.0 in `.venv-compat/duffy` and the original server 3.4.0 (for the
//! source databases of `duffy import`) in `.venv-compat/duffy-app`, installed by the shared
//! installer in `tests/common/venv.rs`.

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

/// The original Duffy 3.4.0 as a server deployment has it (`setup-db`, `admin`, its
/// database models), to make the source databases of `duffy import`. psycopg2 is built
/// from source (libpq's headers and a C compiler are on the machine).
const DUFFY_APP: Venv = Venv {
    name: "duffy-app",
    what: "duffy[app,database,sqlite,postgresql,admin]==3.4.0",
    check: &[
        "bin/python",
        "-c",
        "import duffy.database.model, duffy.version as v; print('duffy', v.__version__)",
    ],
    expect: "duffy 3.4.0",
    requirements: &[
        "duffy[app,database,sqlite,postgresql,admin]==3.4.0",
        "SQLAlchemy==2.1.9",
        "alembic==1.20.1",
        "psycopg2==2.9.13",
        "asyncpg==0.30.0",
        "aiosqlite==0.21.0",
        "bcrypt==4.3.0",
        "pydantic==2.14.4",
        "fastapi==0.115.14",
        "celery==5.7.0",
        "click==8.5.1",
        "PyYAML==6.0.4",
        "Jinja2==3.1.6",
    ],
};

/// The outcome of the one installation attempt of this run, shared by all tests.
static CICO_VENV: OnceCell<Result<PathBuf, String>> = OnceCell::const_new();
/// The same for the duffy client.
static DUFFY_VENV: OnceCell<Result<PathBuf, String>> = OnceCell::const_new();
/// The same for the original server.
static DUFFY_APP_VENV: OnceCell<Result<PathBuf, String>> = OnceCell::const_new();

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

/// The original Duffy 3.4.0 server's virtualenv, installed on first use; panics like
/// [`cico_venv`].
pub async fn duffy_app_venv() -> PathBuf {
    installed(&DUFFY_APP, &DUFFY_APP_VENV).await
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
