//! The client's session file: where the server is and the tokens `keyfleet login` obtained.
//!
//! The file holds bearer tokens, so it is created with mode 0600 and replaced atomically (temp file in the
//! same directory, then rename): a crash never leaves half a file and the tokens are never world-readable,
//! not even for a moment. The password is never stored.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// Environment variable naming the session file (also settable with `--config`).
pub const CONFIG_ENV: &str = "KEYFLEET_CLIENT_CONFIG";

/// What `keyfleet login` saves and every other command reads. The tokens are secrets: `Debug` redacts them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientConfig {
    pub url: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    pub username: String,
    #[serde(serialize_with = "expose")]
    pub jwt: SecretString,
    #[serde(serialize_with = "expose")]
    pub refresh_token: SecretString,
    #[serde(default)]
    pub refresh_token_id: String,
}

/// The session file is where the tokens are meant to be written.
fn expose<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

impl ClientConfig {
    /// Reads the file; `Ok(None)` when it does not exist (not logged in yet).
    pub fn load(path: &Path) -> anyhow::Result<Option<ClientConfig>> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let config = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a keyfleet client config", path.display()))?;
        Ok(Some(config))
    }

    /// Writes the file with mode 0600 through a temp file and a rename.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;

        let file_name = path.file_name().with_context(|| format!("{} is not a file path", path.display()))?;
        let mut tmp_name = OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);

        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        let written = (|| -> io::Result<()> {
            // A leftover from a crashed run of this very pid would keep its old mode: start afresh.
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", path.display()));
        }
        Ok(())
    }
}

/// The session file: `--config` / `KEYFLEET_CLIENT_CONFIG` when given, else the default location.
pub fn resolve_config_path(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    default_config_path(std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME")).with_context(|| {
        format!("cannot find a place for the client config: set HOME, XDG_CONFIG_HOME or {CONFIG_ENV}")
    })
}

/// `$XDG_CONFIG_HOME/keyfleet/client.json`, else `~/.config/keyfleet/client.json`. The XDG spec says a
/// relative `XDG_CONFIG_HOME` is invalid and must be ignored.
pub fn default_config_path(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let base = match xdg_config_home.map(PathBuf::from) {
        Some(xdg) if xdg.is_absolute() => xdg,
        _ => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("keyfleet").join("client.json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> ClientConfig {
        ClientConfig {
            url: "https://127.0.0.1:8443".into(),
            insecure: true,
            ca_cert: Some(PathBuf::from("/etc/keyfleet/ca.pem")),
            username: "admin".into(),
            jwt: "h.p.s".into(),
            refresh_token: "r".repeat(64).into(),
            refresh_token_id: "6b0f1e1e-7d2a-4c43-9a55-8e0c8f1f2a11".into(),
        }
    }

    /// Every field, secrets exposed, to compare configs.
    fn shown(c: &Option<ClientConfig>) -> Option<String> {
        c.as_ref().map(|c| format!("{c:?} {} {}", c.jwt.expose_secret(), c.refresh_token.expose_secret()))
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn round_trips_with_mode_0600_in_a_new_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("keyfleet").join("client.json");
        assert!(ClientConfig::load(&path).expect("load").is_none());

        sample().save(&path).expect("save");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(shown(&ClientConfig::load(&path).expect("load")), shown(&Some(sample())));

        // Overwriting keeps 0600 and leaves no temp file behind.
        let mut changed = sample();
        changed.jwt = "h.p2.s".into();
        changed.ca_cert = None;
        changed.save(&path).expect("save again");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(shown(&ClientConfig::load(&path).expect("load")), shown(&Some(changed)));
        let names: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("client.json")]);
    }

    #[test]
    fn replaces_a_world_readable_file_with_a_private_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.json");
        fs::write(&path, "{}").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        sample().save(&path).expect("save");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn broken_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.json");
        fs::write(&path, "not json").expect("write");
        let err = ClientConfig::load(&path).expect_err("must fail");
        assert!(format!("{err:#}").contains("client.json"));
    }

    #[test]
    fn debug_redacts_tokens() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains("h.p.s"));
        assert!(!shown.contains("rrrr"));
    }

    #[test]
    fn default_path_prefers_absolute_xdg_config_home() {
        let p = default_config_path(Some("/x/cfg".into()), Some("/home/u".into()));
        assert_eq!(p, Some(PathBuf::from("/x/cfg/keyfleet/client.json")));
        let p = default_config_path(Some("relative".into()), Some("/home/u".into()));
        assert_eq!(p, Some(PathBuf::from("/home/u/.config/keyfleet/client.json")));
        let p = default_config_path(None, Some("/home/u".into()));
        assert_eq!(p, Some(PathBuf::from("/home/u/.config/keyfleet/client.json")));
        assert_eq!(default_config_path(None, None), None);
        assert_eq!(
            resolve_config_path(Some(Path::new("/tmp/c.json"))).expect("explicit"),
            PathBuf::from("/tmp/c.json")
        );
    }
}
