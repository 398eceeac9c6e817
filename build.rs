//! Finds FreeSWITCH headers and compiles the C shim against them. The Rust
//! bindings to our own narrow header (which holds no FreeSWITCH type) are
//! committed (`src/ffi/shim_bindings.rs`): a plain build needs no libclang.
//! `cargo build --features regen-bindings` rewrites them with bindgen
//! (options in `build/bindings.rs`, shared with the test that checks them).
//!
//! Headers, first found wins (said out loud with `cargo:warning`):
//! 1. `FREESWITCH_INCLUDE_DIR` (one directory, or several separated by `:`);
//! 2. `pkg-config --cflags-only-I freeswitch` (an installed switch);
//! 3. the vendored headers of the `fswtch-src` crate (current master), plus
//!    the generated headers they lack, written into `OUT_DIR`.
//!
//! A module meant for a given switch should be built against that switch's
//! own headers (1 or 2): FreeSWITCH's enums drift between releases.
//!
//! Every failure is one sentence saying what to install or set (a
//! `cargo:warning` and stderr, then exit 1), never a panic.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[cfg(feature = "regen-bindings")]
#[path = "build/bindings.rs"]
mod bindings;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/bindings.rs");
    println!("cargo:rerun-if-changed=include/zorio_c2c_shim.h");
    println!("cargo:rerun-if-changed=src/shim");
    println!("cargo:rerun-if-env-changed=FREESWITCH_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=FREESWITCH_NO_PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=CC");

    let out =
        PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| {
            fail("OUT_DIR is not set: build with cargo (cargo build --release)")
        }));
    let (source, dirs) = find_headers(&out);
    let shown = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let version = api_version(&dirs).unwrap_or_else(|| {
        fail(&format!(
            "FreeSWITCH headers from {source} ({shown}) have no SWITCH_API_VERSION in \
             switch_types.h: install a complete FreeSWITCH development tree \
             (or unset FREESWITCH_INCLUDE_DIR / set FREESWITCH_NO_PKG_CONFIG=1 to use the vendored headers)"
        ))
    });
    println!(
        "cargo:warning=mod_zorio_c2c: FreeSWITCH headers from {source} ({shown}); SWITCH_API_VERSION {version}"
    );

    compile_shim(&source, &shown, &dirs, version);
    // Pinned: FreeSWITCH's dlclose on unload/reload leaves the library mapped,
    // so nothing that still points into it (a thread-specific-data destructor
    // std registered on a FreeSWITCH thread) can jump into unmapped memory.
    // See docs/freeswitch-module.md, "Reload".
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");

    #[cfg(feature = "regen-bindings")]
    regenerate_bindings();

    write(
        &out.join("api_version.rs"),
        &format!("/// `SWITCH_API_VERSION` of the headers built against.\npub const SWITCH_API_VERSION: i32 = {version};\n"),
    );
}

/// Prints `why` where cargo shows it and stops the build: no backtrace.
fn fail(why: &str) -> ! {
    println!("cargo:warning=mod_zorio_c2c: {why}");
    eprintln!("error: mod_zorio_c2c: {why}");
    std::process::exit(1);
}

fn write(path: &Path, text: &str) {
    if let Err(e) = fs::write(path, text) {
        fail(&format!("cannot write {}: {e}", path.display()));
    }
}

fn compile_shim(source: &str, shown: &str, dirs: &[PathBuf], version: i32) {
    let mut build = cc::Build::new();
    build
        .include("include")
        .define("ZC2C_API_VERSION", version.to_string().as_str())
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .warnings(true);
    for d in dirs {
        build.include(d);
    }
    // No compiler at all is the commonest failure on a bare machine: say so plainly.
    let compiler = build.try_get_compiler().unwrap_or_else(|e| {
        fail(&format!(
            "no C compiler found ({e}): install one (Debian: apt-get install gcc) or set CC"
        ))
    });
    if let Err(e) = Command::new(compiler.path()).arg("--version").output() {
        fail(&format!(
            "the C compiler `{}` cannot be run ({e}): install one (Debian: apt-get install gcc) or set CC",
            compiler.path().display()
        ));
    }
    let mut files: Vec<PathBuf> = match fs::read_dir("src/shim") {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "c"))
            .collect(),
        Err(e) => fail(&format!(
            "cannot read src/shim ({e}): is the source tree complete?"
        )),
    };
    files.sort();
    if let Err(e) = build.files(&files).try_compile("zorio_c2c_shim") {
        // A failed compile's error is the whole command line: the compiler's own messages say more.
        let e = e.to_string();
        let why = if e.starts_with("ToolExecError") {
            "the compiler's messages are above".to_string()
        } else {
            e
        };
        fail(&format!(
            "the C shim (src/shim/*.c) does not compile against the FreeSWITCH headers from \
             {source} ({shown}) ({why}): point FREESWITCH_INCLUDE_DIR at a complete FreeSWITCH \
             include directory (the one holding switch.h and the headers it includes), or unset \
             it and set FREESWITCH_NO_PKG_CONFIG=1 to build against the vendored headers"
        ));
    }
}

/// `--features regen-bindings`: rewrites the committed bindings (if changed).
#[cfg(feature = "regen-bindings")]
fn regenerate_bindings() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let text = bindings::generate(&root).unwrap_or_else(|e| fail(&e.to_string()));
    let path = root.join(bindings::COMMITTED);
    if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        write(&path, &text);
        println!(
            "cargo:warning=mod_zorio_c2c: regenerated {} from {}",
            bindings::COMMITTED,
            bindings::HEADER
        );
    }
}

fn find_headers(out: &Path) -> (String, Vec<PathBuf>) {
    if let Ok(v) = env::var("FREESWITCH_INCLUDE_DIR") {
        let dirs: Vec<PathBuf> = v
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if dirs.iter().any(|d| d.join("switch.h").exists()) {
            return ("FREESWITCH_INCLUDE_DIR".into(), dirs);
        }
        let missing: Vec<String> = dirs
            .iter()
            .filter(|d| !d.is_dir())
            .map(|d| d.display().to_string())
            .collect();
        let what = if !missing.is_empty() {
            format!("names no directory ({} missing)", missing.join(", "))
        } else {
            "holds no switch.h".to_string()
        };
        fail(&format!(
            "FREESWITCH_INCLUDE_DIR={v} {what}: set it to the directory holding your \
             FreeSWITCH's switch.h (e.g. /usr/include/freeswitch or /usr/local/freeswitch/include/freeswitch), \
             or unset it"
        ));
    }
    if env::var_os("FREESWITCH_NO_PKG_CONFIG").is_none() {
        if let Some(dirs) = pkg_config_dirs() {
            if dirs.iter().any(|d| d.join("switch.h").exists()) {
                return ("pkg-config freeswitch".into(), dirs);
            }
            let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            fail(&format!(
                "pkg-config finds freeswitch, but its include directories ({}) hold no switch.h: \
                 install FreeSWITCH's development headers (Debian: libfreeswitch-dev), fix \
                 PKG_CONFIG_PATH, or set FREESWITCH_NO_PKG_CONFIG=1 to use the vendored headers",
                if shown.is_empty() {
                    "none".to_string()
                } else {
                    shown.join(" ")
                }
            ));
        }
    }
    let gen = out.join("fs-generated");
    if let Err(e) = fs::create_dir_all(&gen) {
        fail(&format!("cannot create {} ({e})", gen.display()));
    }
    // Written by FreeSWITCH's configure; an empty one is what a plain Linux build needs here.
    write(
        &gen.join("switch_am_config.h"),
        "/* generated by mod_zorio_c2c build.rs for the vendored headers */\n",
    );
    let mut dirs = vec![gen];
    dirs.extend(fswtch_src::include_dirs());
    (
        "vendored fswtch-src headers (no FreeSWITCH found)".into(),
        dirs,
    )
}

/// The `-I` directories of `pkg-config freeswitch`; `None` when pkg-config
/// is missing or knows no freeswitch.
fn pkg_config_dirs() -> Option<Vec<PathBuf>> {
    let out = Command::new("pkg-config")
        .args(["--cflags-only-I", "freeswitch"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|f| f.strip_prefix("-I"))
            .map(PathBuf::from)
            .collect(),
    )
}

fn api_version(dirs: &[PathBuf]) -> Option<i32> {
    dirs.iter()
        .filter_map(|d| fs::read_to_string(d.join("switch_types.h")).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    (w.next() == Some("#define") && w.next() == Some("SWITCH_API_VERSION"))
                        .then(|| w.next().and_then(|v| v.parse().ok()))
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .next()
}
