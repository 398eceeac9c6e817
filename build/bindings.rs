//! The one definition of how `src/ffi/shim_bindings.rs` is made from
//! `include/zorio_c2c_shim.h`: used by `build.rs` (with
//! `--features regen-bindings`, to rewrite the committed file) and by
//! `tests/shim_bindings.rs` (to check the committed file is what it makes).
//! Needs bindgen, which loads libclang at run time.

use std::path::Path;

/// Our header, relative to the crate root.
pub const HEADER: &str = "include/zorio_c2c_shim.h";
/// The committed bindings, relative to the crate root.
pub const COMMITTED: &str = "src/ffi/shim_bindings.rs";

/// Why no bindings were made.
#[derive(Debug)]
pub enum Error {
    /// libclang could not be loaded (the text says what to install).
    NoLibclang(String),
    /// bindgen ran and failed.
    Bindgen(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoLibclang(s) | Error::Bindgen(s) => f.write_str(s),
        }
    }
}

/// The bindings' text, as committed (our first lines, then bindgen's output).
pub fn generate(root: &Path) -> Result<String, Error> {
    let header = root.join(HEADER);
    let header = header.to_string_lossy().into_owned();
    // bindgen panics when libclang cannot be loaded: catch it, quietly.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let made = std::panic::catch_unwind(|| {
        bindgen::Builder::default()
            .header(header)
            .allowlist_function("zc2c_.*")
            .allowlist_type("zc2c_.*")
            .allowlist_var("ZC2C_.*")
            .prepend_enum_name(false)
            .layout_tests(false)
            .generate()
    });
    std::panic::set_hook(hook);
    match made {
        Ok(Ok(b)) => Ok(format!(
            "// @generated from {HEADER} by build/bindings.rs; do not edit.\n\
             // Regenerate: cargo build --features regen-bindings (needs libclang).\n{b}"
        )),
        Ok(Err(e)) => Err(Error::Bindgen(format!("bindgen on {HEADER} failed: {e}"))),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(Error::NoLibclang(format!(
                "bindgen could not load libclang ({}): install it (Debian: apt-get install libclang-dev) \
                 or set LIBCLANG_PATH to the directory holding libclang.so",
                why.lines().next().unwrap_or("no reason given")
            )))
        }
    }
}
