//! Fuzz targets for `wsproto`: the shared harness and target bodies, and the differential
//! check against tungstenite. See `README.md` in this directory for how to run them.

pub mod differential;
pub mod harness;
pub mod targets;
