//! The built module exports the table FreeSWITCH looks up by name, and is
//! marked to stay mapped when FreeSWITCH unloads it.

mod built_module;

use std::process::Command;

use built_module::{built_module, skipped};

#[test]
fn the_module_exports_its_interface_table() {
    let so = match built_module() {
        Ok(so) => so,
        Err(why) => return skipped(&why),
    };
    let out = match Command::new("nm")
        .arg("-D")
        .arg("--defined-only")
        .arg(&so)
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!("nm -D failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            skipped(&format!("nm not available ({e})"));
            return;
        }
    };
    let symbols = String::from_utf8_lossy(&out.stdout);
    let line = symbols
        .lines()
        .find(|l| l.ends_with(" mod_zorio_c2c_module_interface"))
        .unwrap_or_else(|| {
            panic!(
                "{} does not export mod_zorio_c2c_module_interface",
                so.display()
            )
        });
    // A data symbol (D/R), not a function.
    let kind = line.split_whitespace().nth(1).unwrap_or("");
    assert!(
        matches!(kind, "D" | "R" | "B"),
        "unexpected symbol kind: {line}"
    );
    // Nothing of the shim leaks out as an export.
    assert!(
        !symbols.lines().any(|l| l.ends_with(" zc2c_originate")),
        "shim symbols should stay internal"
    );
}

/// `-z nodelete` (build.rs): FreeSWITCH's `dlclose` on unload or reload must
/// leave the library mapped, so that no thread-specific-data destructor std
/// registered on a FreeSWITCH thread can jump into unmapped memory.
#[test]
fn the_module_stays_mapped_after_dlclose() {
    let so = match built_module() {
        Ok(so) => so,
        Err(why) => return skipped(&why),
    };
    let out = match Command::new("readelf").arg("-d").arg(&so).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!("readelf -d failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            skipped(&format!("readelf not available ({e})"));
            return;
        }
    };
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let flags = dynamic
        .lines()
        .find(|l| l.contains("(FLAGS_1)"))
        .unwrap_or_else(|| panic!("{} has no FLAGS_1 entry:\n{dynamic}", so.display()));
    assert!(flags.contains("NODELETE"), "not pinned: {flags}");
}
