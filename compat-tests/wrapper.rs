//! The `CicoWrapper` library, as CI harnesses called it.

use serde_json::{Value, json};

use crate::harness::cico::COLUMNS;
use crate::harness::{Backend, Cico, Duffy, hostnames};
use crate::scenarios;

scenarios!(the_library_gets_and_releases_nodes);

/// `node_get(...)` and prints `{"hosts": …, "ssid": …, "ssid_type": …}` as JSON.
const NODE_GET: &str = r#"
import json, sys
from cicoclient.wrapper import CicoWrapper
endpoint, key = sys.argv[1], sys.argv[2]
hosts, ssid = CicoWrapper(endpoint=endpoint, api_key=key).node_get(
    ver='7', arch='x86_64', count=2, retry_count=0)
print(json.dumps({"hosts": hosts, "ssid": ssid, "ssid_type": type(ssid).__name__}))
"#;

/// `node_done(ssid=…)`, then the keyed inventory, printed as JSON.
const NODE_DONE: &str = r#"
import json, sys
from cicoclient.wrapper import CicoWrapper
endpoint, key, ssid = sys.argv[1], sys.argv[2], sys.argv[3]
done = CicoWrapper(endpoint=endpoint, api_key=key).node_done(ssid=ssid)
left = CicoWrapper(endpoint=endpoint, api_key=key).inventory()
print(json.dumps({"done": done, "left": left}))
"#;

/// `node_get` returns `({hostname: row}, ssid)` with a string ssid naming the v3 session;
/// `node_done(ssid=…)` returns the same rows and retires it.
async fn the_library_gets_and_releases_nodes(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-library", 10).await;
    duffy.wait_filled().await;
    let python = Cico::new(&duffy.endpoint());

    let got = python.python(NODE_GET, &[&tenant.key]).await;
    got.assert_ok();
    let got = got.json();
    assert_eq!(got["ssid_type"], "str", "{got}");
    let ssid = got["ssid"].as_str().expect("ssid");
    let session = duffy.v3_session(&tenant, ssid).await;
    assert_eq!(session["active"], true);
    assert_eq!(ssid, session["id"].to_string());
    let hosts = got["hosts"].as_object().expect("hosts by name");
    let mut names: Vec<String> = hosts.keys().cloned().collect();
    names.sort();
    assert_eq!(names, hostnames(&session));
    for (name, row) in hosts {
        let keys: Vec<&str> = row
            .as_object()
            .expect("row")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, COLUMNS, "{row}");
        assert_eq!(row["hostname"], json!(name));
        assert_eq!(row["comment"], json!(ssid));
        assert_eq!(row["current_state"], "Deployed");
        assert_eq!(row["node_pool"], "c7-x86-64");
    }

    let done = python.python(NODE_DONE, &[&tenant.key, ssid]).await;
    done.assert_ok();
    let done = done.json();
    assert_eq!(done["done"], Value::Object(hosts.clone()), "{done}");
    assert_eq!(done["left"], json!({}), "{done}");
    assert_eq!(duffy.v3_session(&tenant, ssid).await["active"], false);
}
