//! The statements that write many rows at once (a group of hand-outs, a mechanism run's
//! results, a refill) store exactly what the one-row statements store, on both backends.

use chrono::TimeDelta;
use duffy::store::nodes::{self, NodeState, Saving};
use duffy::store::sessions::{self, NewSession};
use duffy::store::{self, JsonObject, StoreError};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, DEFAULT_CONFIG, spawn_app_unfilled};

/// An owner no instance row has: these nodes are written straight to the store.
const NOBODY: duffy::store::instances::InstanceId = duffy::store::instances::InstanceId(0);

fn object(value: serde_json::Value) -> JsonObject {
    JsonObject(value.as_object().unwrap().clone())
}

async fn many_nodes_are_saved_each_under_its_own_condition(backend: Backend) {
    let app = spawn_app_unfilled(backend, DEFAULT_CONFIG).await;
    let db = app.engine.db();
    // A timestamp with microseconds and one without: both must compare equal as stored.
    let whole = store::now().date().and_hms_opt(1, 2, 3).unwrap();
    let mut tx = db.begin().await.unwrap();
    let mut made = nodes::insert_provisioning(&mut tx, "pool-a", whole, 3, NOBODY)
        .await
        .unwrap();
    let fresh = nodes::insert_provisioning(&mut tx, "pool-a", store::now(), 1, NOBODY)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(made.len(), 3);
    assert!(made.windows(2).all(|w| w[0].id < w[1].id));
    made.extend(fresh);

    let later = store::now() + TimeDelta::microseconds(7);
    let mut changed = made.clone();
    for (i, node) in changed.iter_mut().enumerate() {
        node.state = NodeState::Ready;
        node.hostname = Some(format!("n{i}-\"é'.test"));
        node.ipaddr = Some(format!("10.9.0.{i}"));
        node.comment = (i == 0).then(|| "a 'comment'".to_owned());
        node.reusable = i == 0;
        node.used_count = 40 + i as i64;
        node.retired_at = (i == 3).then_some(later);
        node.data = object(json!({"provision": {"i": i, "s": "x\"y"}, "n": null}));
        node.state_changed_at = later;
    }
    let saving = [
        // as its run claimed it: saved
        Saving::claimed(
            &changed[0],
            NodeState::Provisioning,
            made[0].state_changed_at,
        ),
        // not in the state expected: left alone
        Saving::new(&changed[1], NodeState::Ready),
        // claimed at another time (a newer run): left alone
        Saving::claimed(
            &changed[2],
            NodeState::Provisioning,
            whole + TimeDelta::seconds(1),
        ),
        // a claim time with microseconds: saved
        Saving::claimed(
            &changed[3],
            NodeState::Provisioning,
            made[3].state_changed_at,
        ),
    ];
    let mut tx = db.begin().await.unwrap();
    let mut saved = nodes::save_all(&mut tx, &saving).await.unwrap();
    tx.commit().await.unwrap();
    saved.sort_unstable();
    assert_eq!(saved, [made[0].id, made[3].id]);
    for (i, expected) in [&changed[0], &made[1], &made[2], &changed[3]]
        .into_iter()
        .enumerate()
    {
        let stored = nodes::by_id(db, expected.id).await.unwrap().unwrap();
        assert_eq!(&stored, expected, "node {i}");
    }

    // A clash with a live node's address writes nothing at all.
    let mut clash = [made[1].clone(), made[2].clone()];
    clash[0].ipaddr = Some("10.9.0.0".into());
    clash[1].ipaddr = Some("10.9.0.77".into());
    for node in &mut clash {
        node.state = NodeState::Ready;
    }
    let saving: Vec<Saving> = clash
        .iter()
        .map(|node| Saving::new(node, NodeState::Provisioning))
        .collect();
    let mut tx = db.begin().await.unwrap();
    let refused = nodes::save_all(&mut tx, &saving).await;
    assert!(
        matches!(refused, Err(StoreError::Duplicate { field: "ipaddr" })),
        "{refused:?}"
    );
    drop(tx);
    let untouched = nodes::by_id(db, made[2].id).await.unwrap().unwrap();
    assert_eq!(untouched, made[2]);
    assert!(
        nodes::save_all(&mut db.begin().await.unwrap(), &[])
            .await
            .unwrap()
            .is_empty()
    );

    // The same statement as a transaction of its own.
    let mut again = changed[0].clone();
    again.state = NodeState::Deployed;
    again.used_count += 1;
    let saving = [
        Saving::claimed(&again, NodeState::Ready, changed[0].state_changed_at),
        Saving::new(&made[1], NodeState::Deployed),
    ];
    let saved = nodes::save_all_now(db, &saving).await.unwrap();
    assert_eq!(saved, [again.id]);
    assert_eq!(nodes::by_id(db, again.id).await.unwrap().unwrap(), again);
    assert_eq!(
        nodes::by_id(db, made[1].id).await.unwrap().unwrap(),
        made[1]
    );
}

async fn many_sessions_and_links_come_back_in_the_order_asked(backend: Backend) {
    let app = spawn_app_unfilled(backend, DEFAULT_CONFIG).await;
    let db = app.engine.db();
    let (other, _) = app.tenant("other", None).await;
    let now = store::now();
    let expires = store::truncate(now + TimeDelta::hours(6));
    let specs = |n: i64| object(json!({"nodes_specs": [{"pool": "pool-a", "quantity": n}]}));
    let new = [
        (app.admin.id, Some(expires), specs(1)),
        (other.id, None, specs(2)),
        (app.admin.id, Some(expires), specs(1)),
        (other.id, Some(now + TimeDelta::microseconds(3)), specs(1)),
    ]
    .map(|(tenant_id, expires_at, data)| NewSession {
        tenant_id,
        expires_at,
        data,
    });
    let mut tx = db.begin().await.unwrap();
    let created = sessions::insert_all(&mut tx, now, &new).await.unwrap();
    let node = nodes::insert_provisioning(&mut tx, "pool-a", now, 1, NOBODY)
        .await
        .unwrap()
        .remove(0);
    let copy = object(json!({"nodes_spec": {"pool": "pool-a", "quantity": 2}}));
    sessions::link_all(&mut tx, &[(created[1].id, node.id, "pool-a", &copy)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created.len(), 4);
    for (made, asked) in created.iter().zip(&new) {
        assert_eq!(
            (made.tenant_id, made.expires_at, &made.data, made.created_at),
            (asked.tenant_id, asked.expires_at, &asked.data, now)
        );
        assert!(made.is_active());
        assert_eq!(&sessions::by_id(db, made.id).await.unwrap().unwrap(), made);
    }
    let mut ids: Vec<i64> = created.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four sessions, four ids");
    let held = sessions::nodes_of(db, created[1].id).await.unwrap();
    assert_eq!(held.iter().map(|n| n.id).collect::<Vec<_>>(), [node.id]);
}

async fn a_fill_counts_ready_and_provisioning_nodes_of_its_pool_only(backend: Backend) {
    let app = spawn_app_unfilled(backend, DEFAULT_CONFIG).await;
    let db = app.engine.db();
    let now = store::now();
    let mut tx = db.begin().await.unwrap();
    let mut a = nodes::insert_provisioning(&mut tx, "pool-a", now, 4, NOBODY)
        .await
        .unwrap();
    nodes::insert_provisioning(&mut tx, "pool-b", now, 3, NOBODY)
        .await
        .unwrap();
    // pool-a: one ready and one provisioning count; one deployed and one retired do not.
    for (node, state) in a.iter_mut().zip([NodeState::Ready, NodeState::Deployed]) {
        node.state = state;
        nodes::save(&mut tx, node, NodeState::Provisioning)
            .await
            .unwrap();
    }
    a[3].state = NodeState::Done;
    a[3].retired_at = Some(now);
    nodes::save(&mut tx, &a[3], NodeState::Provisioning)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let made = nodes::fill_to_level(db, "pool-a", now, 5, NOBODY)
        .await
        .unwrap();
    assert_eq!(made.len(), 3, "5 wanted, 2 count");
    assert!(made.windows(2).all(|w| w[0].id < w[1].id));
    for node in &made {
        assert_eq!(
            (node.state, node.pool.as_deref(), node.state_changed_at),
            (NodeState::Provisioning, Some("pool-a"), now)
        );
        assert_eq!(&nodes::by_id(db, node.id).await.unwrap().unwrap(), node);
    }
    let again = nodes::fill_to_level(db, "pool-a", now, 5, NOBODY)
        .await
        .unwrap();
    assert!(again.is_empty(), "at its level: nothing more");
    let lower = nodes::fill_to_level(db, "pool-a", now, 1, NOBODY)
        .await
        .unwrap();
    assert!(lower.is_empty(), "above its level: nothing, and no error");
    let b = nodes::fill_to_level(db, "pool-b", now, 4, NOBODY)
        .await
        .unwrap();
    assert_eq!(b.len(), 1, "pool-b counts its own three");
}

both_backends!(
    many_nodes_are_saved_each_under_its_own_condition,
    many_sessions_and_links_come_back_in_the_order_asked,
    a_fill_counts_ready_and_provisioning_nodes_of_its_pool_only,
);
