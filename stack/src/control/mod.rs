//! The control side of the socket service: what a request means ([`service`]) and
//! how requests arrive over the control socket ([`server`]). The wire format is
//! [`netcell_proto`]'s.

pub mod grants;
pub mod server;
pub mod service;
pub mod table;

pub use netcell_proto as proto;
