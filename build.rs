//! Records the git revision for `sqlite_exporter_build_info` and `--version`:
//! `SQLITE_EXPORTER_REVISION` when set (a build without `.git`, e.g.
//! `docker build --build-arg REVISION=…`), else `git rev-parse`, else `unknown`.
fn main() {
    println!("cargo:rerun-if-env-changed=SQLITE_EXPORTER_REVISION");
    let from_env = std::env::var("SQLITE_EXPORTER_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty());
    let rev = from_env
        .or_else(|| {
            std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SQLITE_EXPORTER_REVISION={rev}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
