//! A node's link to the world. A killed node is dead: every store or cloud call it starts never returns (a
//! crashed process makes no more calls; a call already under way still lands). A paused node's store calls
//! wait until the pause ends (a stalled process or database link), so its leases run out meanwhile.

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
}

impl Gate {
    pub fn kill(&self) {
        self.state.lock().unwrap().dead = true;
    }

    pub fn pause_until(&self, until: Instant) {
        let mut s = self.state.lock().unwrap();
        s.paused_until = Some(s.paused_until.map_or(until, |u| u.max(until)));
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
