//! Real peers for homing's end-to-end tests: no mocks.
//!
//! - [`dns::TestDns`]: an in-process authoritative DNS server serving real zones
//!   over UDP and TCP on loopback.
//! - [`smtp::Receiver`]: a scripted SMTP receiver on real TCP, independent of
//!   homing's own SMTP code so that it can judge it.
//!
//! Both run on the caller's tokio runtime and stop when dropped.

pub mod dns;
pub mod smtp;
