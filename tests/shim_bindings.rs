//! The committed bindings (`src/ffi/shim_bindings.rs`) are exactly what
//! bindgen makes from `include/zorio_c2c_shim.h` with the options of
//! `build/bindings.rs` (the ones `--features regen-bindings` uses). Needs
//! libclang (loaded at run time): without it the test prints `SKIPPED` and
//! passes, unless `ZORIO_C2C_REQUIRE_LIBCLANG` is set (CI sets it).

#[path = "../build/bindings.rs"]
mod bindings;

use std::path::Path;

#[test]
fn committed_bindings_are_what_bindgen_makes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fresh = match bindings::generate(root) {
        Ok(t) => t,
        Err(bindings::Error::NoLibclang(why))
            if std::env::var_os("ZORIO_C2C_REQUIRE_LIBCLANG").is_none() =>
        {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let committed = std::fs::read_to_string(root.join(bindings::COMMITTED))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", bindings::COMMITTED));
    if committed != fresh {
        panic!(
            "{} differs from what bindgen makes of {} (- committed, + fresh):\n{}\n\
             Regenerate it: cargo build --features regen-bindings",
            bindings::COMMITTED,
            bindings::HEADER,
            line_diff(&committed, &fresh)
        );
    }
}

/// The lines between the common head and tail of `a` and `b`, with 3 lines of context.
fn line_diff(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = format!("@@ line {} @@\n", head + 1);
    for l in &a[head.saturating_sub(3)..head] {
        out += &format!("  {l}\n");
    }
    for l in &a[head..a.len() - tail] {
        out += &format!("- {l}\n");
    }
    for l in &b[head..b.len() - tail] {
        out += &format!("+ {l}\n");
    }
    for l in a[a.len() - tail..].iter().take(3) {
        out += &format!("  {l}\n");
    }
    out
}

#[test]
fn the_diff_shows_what_changed() {
    let d = line_diff("a\nb\nc\nd\n", "a\nb\nX\nd\n");
    assert_eq!(d, "@@ line 3 @@\n  a\n  b\n- c\n+ X\n  d\n");
}
