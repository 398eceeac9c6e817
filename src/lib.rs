//! mod_zorio_c2c: click-to-call for FreeSWITCH.
//!
//! [`core`] holds everything the contract describes and knows nothing of C;
//! [`switch`] is the seam it drives; `ffi` is the only place with `unsafe`
//! and the only code that talks to FreeSWITCH; [`sim`] is a simulated switch
//! for tests and the sandbox.

pub mod app;
pub mod core;
mod ffi;
pub mod sim;
pub mod switch;
