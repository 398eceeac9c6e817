//! The FreeSWITCH seam: the only place with `unsafe`. Raw bindings stay
//! private here (`sys`); the rest of the crate sees [`fs_switch::FsSwitch`]
//! through the [`crate::switch::Switch`] trait.

mod sys;
