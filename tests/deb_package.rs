//! `make deb`'s package (scripts/deb.sh over the built module): its contents
//! and metadata, and a real install, edit, upgrade, remove and purge with dpkg
//! in a scratch root. Prints `SKIPPED` where dpkg / dpkg-deb are missing or
//! the module is not built (`cargo build --release`).

mod built_module;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use built_module::{built_module, skipped};

const PKG: &str = "freeswitch-mod-zorio-c2c";
const MODDIR: &str = "/usr/lib/freeswitch/mod";
const CONFDIR: &str = "/etc/freeswitch";
const SO: &str = "usr/lib/freeswitch/mod/mod_zorio_c2c.so";
const CONF: &str = "etc/freeswitch/autoload_configs/zorio_c2c.conf.xml";

fn root_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd`, panicking with its output when it fails; its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// scripts/deb.sh with the module at `so`, version `version`, into `out`.
fn build_deb(so: &Path, version: &str, out: &Path) -> PathBuf {
    let printed = run(Command::new(root_dir().join("scripts/deb.sh"))
        .env("SO", so)
        .env("VERSION", version)
        .env("MODDIR", MODDIR)
        .env("CONFDIR", CONFDIR)
        .env("OUTDIR", out)
        .env("COMPRESS", "gzip"));
    let deb = PathBuf::from(printed.lines().last().unwrap_or_default());
    assert!(deb.exists(), "deb.sh printed {printed:?}");
    deb
}

/// dpkg acting on a scratch root (its own instdir and admindir).
fn dpkg(root: &Path) -> Command {
    let mut c = Command::new("dpkg");
    c.arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("dpkg.log").display()))
        // The scratch root has no libc6 to satisfy Depends.
        .arg("--force-depends")
        .arg("--force-not-root");
    c
}

#[test]
fn the_package_installs_upgrades_keeping_conffile_edits_and_purges() {
    let so = match built_module() {
        Ok(so) => so,
        Err(why) => return skipped(&why),
    };
    if !have("dpkg-deb") || !have("dpkg") {
        return skipped("dpkg-deb / dpkg not installed (Debian's dpkg package)");
    }
    let tmp = std::env::temp_dir().join(format!("zorio-c2c-deb-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).unwrap();
    let arch = run(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string();
    let version = env!("CARGO_PKG_VERSION");

    // Name, metadata, contents.
    let deb = build_deb(&so, version, &tmp.join("out"));
    assert_eq!(
        deb.file_name().unwrap().to_string_lossy(),
        format!("{PKG}_{version}_{arch}.deb")
    );
    let field = |name: &str| {
        run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), PKG);
    assert_eq!(field("Version"), version);
    assert_eq!(field("Architecture"), arch);
    assert!(field("Description").contains("click-to-call"));
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(info.contains("conffiles"), "{info}");
    let conffiles = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(conffiles.trim(), format!("/{CONF}"));
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [SO, CONF] {
        let line = contents
            .lines()
            .find(|l| l.ends_with(&format!("./{path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{contents}"));
        assert!(line.contains("root/root"), "owned by root: {line}");
    }
    for path in [
        "usr/share/freeswitch-mod-zorio-c2c/grafana/zorio_c2c_dashboard.json",
        "usr/share/freeswitch-mod-zorio-c2c/prometheus/zorio_c2c_rules.yml",
        "usr/share/freeswitch-mod-zorio-c2c/prometheus/zorio_c2c_rules.test.yml",
        "usr/share/doc/freeswitch-mod-zorio-c2c/metrics.md",
    ] {
        assert!(
            contents.contains(&format!("./{path}")),
            "{path} not in:\n{contents}"
        );
    }

    // Install into a scratch root.
    let root = tmp.join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    run(dpkg(&root).arg("--install").arg(&deb));
    let shipped = fs::read(root_dir().join("conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    assert!(root.join(SO).is_file());
    assert_eq!(fs::read(root.join(CONF)).unwrap(), shipped);

    // The admin edits the config; an upgrade keeps the edit and replaces the module.
    let edited = format!(
        "{}<!-- the admin's edit -->\n",
        String::from_utf8_lossy(&shipped)
    );
    fs::write(root.join(CONF), &edited).unwrap();
    let deb2 = build_deb(&so, &format!("{version}+1"), &tmp.join("out"));
    run(dpkg(&root).arg("--install").arg(&deb2));
    let status = run(dpkg(&root).args(["-s", PKG]));
    assert!(
        status.contains(&format!("Version: {version}+1")),
        "{status}"
    );
    assert_eq!(fs::read_to_string(root.join(CONF)).unwrap(), edited);
    assert!(root.join(SO).is_file());

    // Remove takes the module and keeps the admin's config; purge takes it too.
    run(dpkg(&root).args(["--remove", PKG]));
    assert!(!root.join(SO).exists());
    assert_eq!(fs::read_to_string(root.join(CONF)).unwrap(), edited);
    run(dpkg(&root).args(["--purge", PKG]));
    assert!(!root.join(CONF).exists(), "purge removes the conffile");
    let _ = fs::remove_dir_all(&tmp);
}

/// deb.sh and install.sh find the module where cargo put it: under
/// `CARGO_TARGET_DIR`, or a cargo config's `build.target-dir` (here through
/// its environment form `CARGO_BUILD_TARGET_DIR`), as `cargo metadata` says.
#[test]
fn the_scripts_follow_cargos_target_directory() {
    let so = match built_module() {
        Ok(so) => so,
        Err(why) => return skipped(&why),
    };
    if !have("dpkg-deb") {
        return skipped("dpkg-deb not installed (Debian's dpkg package)");
    }
    let tmp = std::env::temp_dir().join(format!("zorio-c2c-target-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"] {
        let target = tmp.join(var.to_lowercase());
        fs::create_dir_all(target.join("release")).unwrap();
        fs::copy(&so, target.join("release/libmod_zorio_c2c.so")).unwrap();
        let script = |name: &str| {
            let mut c = Command::new(root_dir().join("scripts").join(name));
            // Run from elsewhere: the scripts find the crate themselves.
            c.current_dir(&tmp)
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("CARGO_BUILD_TARGET_DIR")
                .env_remove("SO")
                .env_remove("OUTDIR")
                .env(var, &target);
            c
        };
        let printed = run(&mut script("target-dir.sh"));
        assert_eq!(printed.trim(), target.to_str().unwrap(), "{var}");
        let printed = run(script("deb.sh")
            .env("MODDIR", MODDIR)
            .env("CONFDIR", CONFDIR)
            .env("COMPRESS", "gzip"));
        let deb = PathBuf::from(printed.lines().last().unwrap_or_default());
        assert_eq!(deb.parent(), Some(target.join("debian").as_path()), "{var}");
        assert!(deb.is_file(), "{var}: {printed}");
        let moddir = target.join("mod");
        run(script("install.sh").arg(&moddir).arg(target.join("conf")));
        assert_eq!(
            fs::read(moddir.join("mod_zorio_c2c.so")).unwrap(),
            fs::read(&so).unwrap(),
            "{var}"
        );
        assert!(target
            .join("conf/autoload_configs/zorio_c2c.conf.xml")
            .is_file());
    }
    fs::remove_dir_all(&tmp).unwrap();
}
