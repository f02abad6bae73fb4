//! Scheduling: per-destination queues, retries with backoff, expiry and delay warnings.
//! `queue` decides (sans-IO, time injected); `runner` drives it with tokio and the network.

pub mod janitor;
pub mod queue;
pub mod retry;
pub mod runner;
