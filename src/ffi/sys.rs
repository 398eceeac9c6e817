//! Raw bindings to our own shim header (`include/zorio_c2c_shim.h`), made by
//! bindgen in build.rs; no FreeSWITCH type appears in them.
#![allow(non_camel_case_types, non_upper_case_globals, dead_code)]

include!(concat!(env!("OUT_DIR"), "/shim_bindings.rs"));
include!(concat!(env!("OUT_DIR"), "/api_version.rs"));
