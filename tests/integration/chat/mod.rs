//! `mpecho chat-server`: relaying among clients, the sender tag, joined and
//! left announcements, binary and oversized datagrams, the bounded list and
//! its `server full` reply, `END` and idle expiry, the reflection guard,
//! signals and start-up errors, and relays sharing a room through a real
//! Redis (`redis.rs`) — driven by plain `UdpSocket` clients (`peer.rs`,
//! also used by the `mpecho chat` tests).
//!
//! Silence cannot be observed directly, so "nothing arrived" is proved with
//! a fence: another client sends a datagram afterwards, and it must be the
//! very next thing received. The relay handles datagrams one at a time and
//! sends on one socket, so anything wrongly sent before the fence would be
//! queued ahead of it. A datagram that gets no visible effect at all is
//! known to be handled once the SIGUSR1 figures count it.

mod membership;
mod peer;
mod redis;
mod relaying;
mod signals_and_errors;

pub(crate) use peer::{Peer, join_all, start_relay, tag};
