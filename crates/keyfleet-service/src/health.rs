//! Readiness (`/readyz`) and the scrape-time half of `/metrics`.

use std::time::Duration;

use keyfleet_core::metrics::Gauges;
use keyfleet_core::time::now;

use crate::Services;

/// How long one database check may take before the node counts as not ready: a probe must answer even
/// when the database hangs.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The outcome of the readiness checks; `problems` is empty when the node is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub problems: Vec<Problem>,
}

/// One failed check: which (`database`, `migrations`, `leases`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub check: &'static str,
    pub reason: String,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Services {
    /// Ready to take work: the database answers a write, its schema has every migration of this binary, and
    /// this node's lease renewals are on time (its leases cannot have expired under it).
    pub async fn readiness(&self) -> Readiness {
        let mut problems = Vec::new();
        let mut fail = |check, reason: String| problems.push(Problem { check, reason });
        match tokio::time::timeout(CHECK_TIMEOUT, self.store.probe_write(now())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => fail("database", format!("the database refused a write: {e}")),
            Err(_) => fail("database", format!("the database did not answer a write within {CHECK_TIMEOUT:?}")),
        }
        match tokio::time::timeout(CHECK_TIMEOUT, self.store.pending_migrations()).await {
            Ok(Ok(pending)) if pending.is_empty() => {}
            Ok(Ok(pending)) => fail("migrations", format!("migrations not applied: {pending:?}")),
            Ok(Err(e)) => fail("migrations", format!("cannot read the applied migrations: {e}")),
            Err(_) => fail("migrations", format!("the database did not answer within {CHECK_TIMEOUT:?}")),
        }
        let ttl = self.engine.config().lease_ttl;
        let since = now() - self.engine.heartbeat().last_renewed;
        if since.to_std().is_ok_and(|late| late > ttl) {
            fail(
                "leases",
                format!(
                    "this node's lease renewals are late: the last one succeeded {} s ago (leases last {} s)",
                    since.num_seconds(),
                    ttl.as_secs()
                ),
            );
        }
        Readiness { problems }
    }

    /// The metrics the engine and the HTTP edge recorded, then gauges read now: leases held, pacing rates,
    /// connection pools, and jobs in the database by status (omitted when the database does not answer).
    pub async fn render_metrics(&self) -> String {
        let mut out = String::new();
        self.engine.metrics().render(&mut out);

        let hb = self.engine.heartbeat();
        Gauges::new("keyfleet_leases_held", "Leases this node held at its last renewal.", &["kind"])
            .set(&["item"], hb.item_leases as f64)
            .set(&["partition"], hb.partition_leases as f64)
            .render(&mut out);
        Gauges::new(
            "keyfleet_lease_renewal_age_seconds",
            "Seconds since this node last renewed its leases successfully.",
            &[],
        )
        .set(&[], (now() - hb.last_renewed).num_milliseconds() as f64 / 1000.0)
        .render(&mut out);

        let mut rates = self.engine.pacing_rates();
        rates.sort_by(|a, b| (&a.0.account, &a.0.region, a.0.action).cmp(&(&b.0.account, &b.0.region, b.0.action)));
        let labels = ["account", "region", "action"];
        let mut rate = Gauges::new(
            "keyfleet_pacing_rate_per_second",
            "Current request rate of a pacing bucket (halved on throttling, recovering towards the ceiling).",
            &labels,
        );
        let mut ceiling =
            Gauges::new("keyfleet_pacing_ceiling_per_second", "Highest rate of a pacing bucket (its quota).", &labels);
        for (p, r, c) in &rates {
            rate.set(&[&p.account, &p.region, p.action], *r);
            ceiling.set(&[&p.account, &p.region, p.action], *c);
        }
        rate.render(&mut out);
        ceiling.render(&mut out);

        let pools = self.store.pool_stats();
        let mut size = Gauges::new("keyfleet_db_pool_connections", "Open database connections.", &["pool"]);
        let mut idle = Gauges::new("keyfleet_db_pool_idle_connections", "Idle database connections.", &["pool"]);
        let mut max = Gauges::new("keyfleet_db_pool_max_connections", "Database connection limit.", &["pool"]);
        for p in &pools {
            size.set(&[p.pool], p.size as f64);
            idle.set(&[p.pool], p.idle as f64);
            max.set(&[p.pool], p.max as f64);
        }
        size.render(&mut out);
        idle.render(&mut out);
        max.render(&mut out);

        if let Ok(Ok(mut counts)) = tokio::time::timeout(CHECK_TIMEOUT, self.store.job_counts()).await {
            counts.sort_by(|a, b| (&a.cloud, &a.operation, &a.status).cmp(&(&b.cloud, &b.operation, &b.status)));
            let mut jobs = Gauges::new(
                "keyfleet_jobs",
                "Bulk jobs in the database (all nodes) by cloud, operation and status.",
                &["cloud", "operation", "status"],
            );
            for c in &counts {
                jobs.set(&[&c.cloud, &c.operation, &c.status], c.count as f64);
            }
            jobs.render(&mut out);
        }
        out
    }
}
