//! The audit trail: appended inside the transaction of the change each record describes (fail closed: if the
//! record cannot be written, the change is rolled back), read back for `GET /v1/audit/records` and for
//! `keyfleet audit verify`.

use async_trait::async_trait;
use keyfleet_core::Page;
use keyfleet_core::time::now;
use sqlx::{Pool, Transaction};

use super::inventory::lock_named;
use super::{Backend, Db, Fields, Query, list_page, order_by};
use crate::audit::{AuditEvent, AuditFilter, AuditRecord, GENESIS_HASH};
use crate::{AuditStore, Result};

/// The name of the lock appends take on PostgreSQL, so that nodes append one after another.
const CHAIN_LOCK: &str = "keyfleet/audit-chain";

fn record<D: Db>(r: Fields<'_, D>) -> Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.int("seq")?,
        at: r.ts("at")?,
        user: r.text("username")?,
        client: r.text("client")?,
        request_id: r.text("request_id")?,
        action: r.text("action")?,
        resource: r.text("resource")?,
        outcome: r.text("outcome")?,
        details: r.text("details")?,
        prev_hash: r.text("prev_hash")?,
        hash: r.text("hash")?,
    })
}

/// Appends `event` to the chain inside `tx`. Call it as the transaction's last statement: it takes the
/// chain's lock (held until commit), and taking it last means a transaction holding it waits for nothing
/// else, so no lock cycle can form with the row locks other writers hold.
pub(crate) async fn append<D: Db>(tx: &mut Transaction<'_, D>, event: &AuditEvent) -> Result<()> {
    append_all(tx, std::slice::from_ref(event)).await
}

/// Records per INSERT statement of [`append_all`] (11 parameters each).
const RECORDS_PER_INSERT: usize = 64;

/// [`append`] for several events, in order: one lock, one read of the chain's end, and one INSERT per
/// [`RECORDS_PER_INSERT`] records (a batch of item results audits all its cloud calls at once).
pub(crate) async fn append_all<D: Db>(tx: &mut Transaction<'_, D>, events: &[AuditEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    lock_named(tx, CHAIN_LOCK.to_string()).await?;
    let last = Query::<D>::new("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
        .optional(&mut *tx, |r| Ok((r.int("seq")?, r.text("hash")?)))
        .await?;
    let (mut seq, mut prev) = last.unwrap_or((0, GENESIS_HASH.to_string()));
    for chunk in events.chunks(RECORDS_PER_INSERT) {
        let mut q = Query::<D>::new(
            "INSERT INTO audit_records (seq, at, username, client, request_id, action, resource, outcome, details, \
             prev_hash, hash) VALUES ",
        );
        for (i, event) in chunk.iter().enumerate() {
            seq += 1;
            let r = AuditRecord::chain(seq, now(), event, &prev);
            q.push(if i == 0 { "(" } else { ", (" });
            q.push_bind(r.seq).push(", ").push_bind(r.at).push(", ").push_bind(r.user).push(", ");
            q.push_bind(r.client).push(", ").push_bind(r.request_id).push(", ").push_bind(r.action).push(", ");
            q.push_bind(r.resource).push(", ").push_bind(r.outcome).push(", ").push_bind(r.details).push(", ");
            q.push_bind(r.prev_hash).push(", ").push_bind(r.hash.clone()).push(")");
            prev = r.hash;
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Runs one statement and appends its record, in one transaction; returns the rows the statement changed.
/// With `only_if_changed`, a statement that changed nothing is committed without a record.
pub(crate) async fn audited<D: Db>(
    pool: &Pool<D>,
    query: Query<D>,
    event: AuditEvent,
    only_if_changed: bool,
) -> Result<u64> {
    let mut tx = pool.begin().await?;
    let changed = query.execute(&mut tx).await?;
    if changed > 0 || !only_if_changed {
        append(&mut tx, &event).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

#[async_trait]
impl<B: Backend> AuditStore for B {
    async fn record_audit(&self, event: &AuditEvent) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, f: &AuditFilter, page: &Page) -> Result<(Vec<AuditRecord>, u64)> {
        let filter = |q: &mut Query<B::Db>| {
            q.push(" WHERE 1 = 1");
            if let Some(since) = f.since {
                q.push(" AND at >= ").push_bind(since);
            }
            if let Some(until) = f.until {
                q.push(" AND at < ").push_bind(until);
            }
            for (column, value) in [("username", &f.user), ("action", &f.action), ("resource", &f.resource)] {
                if let Some(v) = value {
                    q.push(&format!(" AND {column} = ")).push_bind(v);
                }
            }
        };
        let columns = &[("seq", "seq"), ("at", "at"), ("user", "username"), ("action", "action")];
        let order = order_by(&page.sort, columns, "seq ASC", "seq");
        list_page(
            self.reader(),
            "SELECT * FROM audit_records",
            "SELECT count(*) AS n FROM audit_records",
            filter,
            order,
            page,
            record,
        )
        .await
    }

    async fn audit_chain(&self, after_seq: i64, limit: u64) -> Result<Vec<AuditRecord>> {
        // In the rows' physical order by `seq`; a verifier also sees a row whose seq was edited out of place.
        Query::new(format!("SELECT * FROM audit_records WHERE seq > $1 ORDER BY seq ASC LIMIT {limit}"))
            .bind(after_seq)
            .all(self.reader(), record)
            .await
    }
}
