//! Raw bindings to our own shim header (`include/zorio_c2c_shim.h`): made by
//! bindgen and committed (`shim_bindings.rs`, rewritten by
//! `cargo build --features regen-bindings`, checked by `tests/shim_bindings.rs`);
//! no FreeSWITCH type appears in them.
#![allow(non_camel_case_types, non_upper_case_globals, dead_code)]

// `include!`, not `mod`: rustfmt leaves the generated text exactly as bindgen wrote it.
include!("shim_bindings.rs");
include!(concat!(env!("OUT_DIR"), "/api_version.rs"));
