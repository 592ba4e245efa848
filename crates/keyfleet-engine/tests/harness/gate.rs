//! A node's link to the world. A killed node is dead: every store or cloud call it starts never returns (a
//! crashed process makes no more calls; a call already under way still lands). A paused node's store calls
//! wait until the pause ends (a stalled process or database link), so its leases run out meanwhile. A pause
//! can also catch a node between the store's answer and its next step (SIGSTOP lands anywhere): the node
//! then acts on an answer that was true when given.

use std::sync::Mutex;

use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    dead: bool,
    paused_until: Option<Instant>,
    /// A pause that starts when the node next reaches a [`Moment`].
    pause_at: Option<(Moment, std::time::Duration)>,
}

/// Where in a node's work a pause can be made to land (SIGSTOP lands anywhere; these are the moments where a
/// node could act on what it knew before the pause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// The store has answered a lease check (`holds_item`); the node has not seen the answer yet.
    LeaseConfirmed,
    /// A heartbeat has read the clock for its new lease end; its write has not reached the store yet.
    HeartbeatSending,
}

impl Gate {
    pub fn kill(&self) {
        self.state.lock().unwrap().dead = true;
    }

    pub fn pause_until(&self, until: Instant) {
        let mut s = self.state.lock().unwrap();
        s.paused_until = Some(s.paused_until.map_or(until, |u| u.max(until)));
    }

    /// The node stalls for `d` when it next reaches `moment`.
    pub fn pause_at(&self, moment: Moment, d: std::time::Duration) {
        self.state.lock().unwrap().pause_at = Some((moment, d));
    }

    /// The node reached `moment`: a pause set for it ([`Gate::pause_at`]) starts now and is waited out.
    pub async fn reached(&self, moment: Moment) {
        let pause = {
            let mut s = self.state.lock().unwrap();
            match s.pause_at {
                Some((m, d)) if m == moment => {
                    s.pause_at = None;
                    Some(d)
                }
                _ => None,
            }
        };
        if let Some(d) = pause {
            self.pause_until(Instant::now() + d);
            self.store_call().await;
        }
    }

    pub fn is_dead(&self) -> bool {
        self.state.lock().unwrap().dead
    }

    /// Before a store call: waits out a pause; never returns on a dead node.
    pub async fn store_call(&self) {
        loop {
            let until = {
                let s = self.state.lock().unwrap();
                if s.dead {
                    None
                } else {
                    match s.paused_until {
                        Some(u) if u > Instant::now() => Some(u),
                        _ => return,
                    }
                }
            };
            match until {
                Some(u) => tokio::time::sleep_until(u).await,
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Before a cloud call: never returns on a dead node. Pauses do not hold cloud calls: a call the node
    /// decided to send (after checking its lease) goes at once, as it would over a live connection.
    pub async fn cloud_call(&self) {
        if self.is_dead() {
            std::future::pending::<()>().await;
        }
    }
}
