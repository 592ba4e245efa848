//! The audit trail on both backends: changes append their own records, several nodes appending at once still
//! form one gapless chain, and the chain survives a round trip through the database unchanged.

#[macro_use]
mod common;

use common::*;
use keyfleet_core::time::now;
use keyfleet_store::audit::{AuditActor, AuditFilter, ChainVerifier};

on_both_backends!(changes_append_their_records_and_nodes_appending_at_once_form_one_chain);

async fn changes_append_their_records_and_nodes_appending_at_once_form_one_chain(db: &TestDb) {
    let s = db.store();
    assert!(s.ensure_group("ops", "", now()).await.expect("group"));
    assert!(!s.ensure_group("ops", "", now()).await.expect("again"), "no change, no record");
    let c = connection("conn");
    s.insert_aws_connection(&c).await.expect("connection");
    let (records, total) = s.list_audit(&AuditFilter::default(), &page(0, 10, &[])).await.expect("list");
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!((actions, total), (vec!["group.create", "connection.create"], 2));
    assert_eq!(records[0].user, "system", "outside a request the actor is the system");
    assert_eq!(records[1].resource, format!("connection:{}", c.id));

    // Two nodes, 8 writers each, 10 appends per writer, all at once.
    let nodes = [db.node().await, db.node().await];
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..8 {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    let e = AuditActor::system().event("test.append", format!("node{n}/writer{w}/{i}"));
                    node.record_audit(&e).await.expect("append");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let chain = s.audit_chain(0, 1000).await.expect("chain");
    assert_eq!(chain.len(), 2 + 2 * 8 * 10);
    let mut v = ChainVerifier::default();
    for r in &chain {
        v.check(r).unwrap_or_else(|e| panic!("{e}"));
    }
    // Paged reads see the same chain.
    let tail = s.audit_chain(100, 1000).await.expect("tail");
    assert_eq!(tail.first().map(|r| r.seq), Some(101));
    assert_eq!(tail.last(), chain.last());
}
