//! Admission for the CPU-heavy steps of starting a pod: sandbox setup (namespace pinning + CNI ADD) and
//! container create + start (shim and runc spawns).
//!
//! At most `permits` of those steps run at once, and a waiter is admitted by its pod's arrival order at
//! this agent, not by the order it asked. So when a burst of pods arrives, a pod whose sandbox is ready
//! starts its container before later pods set up their sandboxes: the burst finishes front to back and
//! most pods are Ready long before the last one, instead of all of them being half-done until the end.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

pub struct StartupGate {
    state: Mutex<State>,
}

struct State {
    free: usize,
    /// Keyed by (pod arrival number, ticket): the first entry is admitted next.
    waiters: BTreeMap<(u64, u64), oneshot::Sender<()>>,
    next_ticket: u64,
}

/// A running step; the slot goes to the next waiter when this is dropped.
pub struct Permit<'a> {
    gate: &'a StartupGate,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// Removes an abandoned wait (the step's future was dropped) and passes on a slot handed to it meanwhile.
struct Waiting<'a> {
    gate: &'a StartupGate,
    key: (u64, u64),
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        self.gate.lock().waiters.remove(&self.key);
        if rx.try_recv().is_ok() {
            self.gate.release();
        }
    }
}

impl StartupGate {
    pub fn new(permits: usize) -> Self {
        Self {
            state: Mutex::new(State {
                free: permits.max(1),
                waiters: BTreeMap::new(),
                next_ticket: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot; among waiters the lowest `order` (the pod's arrival number) goes first.
    pub async fn acquire(&self, order: u64) -> Permit<'_> {
        let (key, rx) = {
            let mut st = self.lock();
            if st.free > 0 {
                st.free -= 1;
                return Permit { gate: self };
            }
            let key = (order, st.next_ticket);
            st.next_ticket += 1;
            let (tx, rx) = oneshot::channel();
            st.waiters.insert(key, tx);
            (key, rx)
        };
        let mut waiting = Waiting {
            gate: self,
            key,
            rx: Some(rx),
        };
        if let Some(rx) = waiting.rx.as_mut() {
            // The sender lives in `waiters` until release() hands it the slot; it is never dropped unsent.
            let _ = rx.await;
        }
        waiting.rx = None;
        Permit { gate: self }
    }

    fn release(&self) {
        let mut st = self.lock();
        while let Some((_, tx)) = st.waiters.pop_first() {
            if tx.send(()).is_ok() {
                return;
            }
        }
        st.free += 1;
    }

    #[cfg(test)]
    fn free(&self) -> usize {
        self.lock().free
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_are_admitted_by_arrival_order_not_request_order() {
        let gate = Arc::new(StartupGate::new(1));
        let held = gate.acquire(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for pod in [7u64, 3, 5, 1] {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = gate.acquire(pod).await;
                order.lock().unwrap_or_else(|e| e.into_inner()).push(pod);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(
            *order.lock().unwrap_or_else(|e| e.into_inner()),
            [1, 3, 5, 7]
        );
        assert_eq!(gate.free(), 1);
    }

    #[tokio::test]
    async fn abandoned_waits_do_not_leak_slots() {
        let gate = Arc::new(StartupGate::new(2));
        let a = gate.acquire(1).await;
        let b = gate.acquire(2).await;
        let g = gate.clone();
        let waiter = tokio::spawn(async move {
            let _p = g.acquire(3).await;
            std::future::pending::<()>().await;
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Cancel while waiting, then free both: every slot comes back.
        waiter.abort();
        let _ = waiter.await;
        drop(a);
        drop(b);
        assert_eq!(gate.free(), 2);

        // A slot handed over to a waiter that is then dropped before it runs goes on to the next one.
        let a = gate.acquire(1).await;
        let b = gate.acquire(1).await;
        let mut fut = Box::pin(gate.acquire(5));
        assert!(futures::poll!(fut.as_mut()).is_pending());
        drop(a); // hands the slot to `fut`, which never runs again
        drop(fut);
        assert_eq!(gate.free(), 1);
        drop(b);
        assert_eq!(gate.free(), 2);
    }
}
