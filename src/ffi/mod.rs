//! The FreeSWITCH seam: the only place with `unsafe`. Raw bindings stay
//! private here (`sys`); the core sees [`fs_switch::FsSwitch`] only through
//! the [`crate::switch::Switch`] trait.

mod api;
mod complete;
mod config_load;
mod cstr;
mod custom_events;
mod dial;
mod events;
mod fs_switch;
mod globals;
mod guard;
mod log;
mod module;
mod pinned;
mod sys;
mod waiters;
