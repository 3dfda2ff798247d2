//! The control API's token file. It holds secrets that run actions on production databases, so
//! it is refused, as ssh refuses a private key, when another user could read or replace it: a
//! mode that gives the group or others any access, or an owner other than the exporter's user
//! (or root). A file that is missing, a directory or holds no token is refused too, since every
//! request would then be answered 401.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The tokens in the text of a token file: one per line, blank lines and `#` comments ignored.
pub fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Reads the token file at `path` if it is fit to hold secrets; the error names the file and
/// what is wrong with it (its mode, its owner, ...).
pub fn read(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read token file {shown}: {e}"))?;
    if meta.is_dir() {
        return Err(format!(
            "token file {shown} is a directory; expected a file of bearer tokens, one per line"
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    judge(path, meta.mode(), meta.uid(), me)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read token file {shown}: {e}"))?;
    if tokens(&text).next().is_none() {
        return Err(format!(
            "token file {shown} holds no token; expected bearer tokens, one per line"
        ));
    }
    Ok(text)
}

/// Whether a file of `mode` owned by `owner` may hold the tokens of a process running as `me`.
fn judge(path: &Path, mode: u32, owner: u32, me: u32) -> Result<(), String> {
    let shown = path.display();
    let mode = mode & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "token file {shown} has mode {mode:04o}, so other users can read or change it; \
             expected no access for group and others (chmod 600 {shown})"
        ));
    }
    if owner != me && owner != 0 {
        return Err(format!(
            "token file {shown} is owned by uid {owner}, not by the exporter's user (uid {me}) or root"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn token_file(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join("token");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_private_file_with_a_token_is_read() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o400] {
            let p = token_file(dir.path(), "# ops\n\n  abc  \n", mode);
            let text = read(&p).unwrap();
            assert_eq!(tokens(&text).collect::<Vec<_>>(), ["abc"]);
        }
    }

    #[test]
    fn files_others_can_read_or_change_are_refused_naming_file_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, shown) in [
            (0o644, "0644"),
            (0o666, "0666"),
            (0o640, "0640"),
            (0o602, "0602"),
        ] {
            let p = token_file(dir.path(), "abc\n", mode);
            let e = read(&p).unwrap_err();
            assert!(
                e.contains(&p.display().to_string()) && e.contains(&format!("mode {shown}")),
                "{e}"
            );
        }
    }

    #[test]
    fn missing_empty_and_directory_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(&dir.path().join("nope")).unwrap_err();
        assert!(e.contains("nope") && e.contains("No such file"), "{e}");
        let e = read(dir.path()).unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
        let p = token_file(dir.path(), "# only a comment\n\n", 0o600);
        assert!(read(&p).unwrap_err().contains("holds no token"));
    }

    #[test]
    fn a_file_of_another_user_is_refused() {
        let p = Path::new("/run/token");
        let e = judge(p, 0o100600, 1001, 1000).unwrap_err();
        assert!(e.contains("/run/token is owned by uid 1001"), "{e}");
        assert!(judge(p, 0o100600, 1000, 1000).is_ok());
        assert!(
            judge(p, 0o100400, 0, 1000).is_ok(),
            "root's files are trusted, as by ssh"
        );
    }
}
