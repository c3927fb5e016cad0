//! Broker credentials read at every connect, for every MQTT client of the connector (the
//! publisher, ingest's checkpoint store, the schema registry client): a rotated password or
//! service account token is used on the next connection without a restart.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rumqttc::v5::MqttOptions;

/// Azure IoT Operations' MQTT 5 enhanced authentication method for a Kubernetes service account
/// token.
pub const SAT_METHOD: &str = "K8S-SAT";

/// Who a client is to the broker: user name and password file, and/or a service account token
/// file. Files are read by [`BrokerCredentials::apply`], never kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerCredentials {
    /// User name, if any.
    pub username: Option<String>,
    /// Password file (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Service account token file for `K8S-SAT`.
    pub sat_file: Option<PathBuf>,
}

/// Longest password or token file read, in bytes: CONNECT carries a password of at most
/// 65,535 bytes, so a larger file (or `/dev/zero`) is refused, not read whole.
pub const FILE_BYTES_MAX: u64 = 65_535;

/// What the files hold at one moment, read together.
struct Held {
    password: Option<String>,
    token: Option<Vec<u8>>,
}

impl BrokerCredentials {
    /// Reads the files once, as a connect would: a missing, unreadable, oversized or empty one is
    /// a configuration error at start rather than a connect retried forever. Names the file,
    /// never its content.
    pub fn check(&self) -> Result<(), String> {
        self.read().map(drop)
    }

    /// Reads the files (off the runtime thread) and puts the credentials into `o` for the next
    /// connect. Errors name the file, never its content.
    pub async fn apply(&self, o: &mut MqttOptions) -> Result<(), String> {
        let me = self.clone();
        let read = tokio::task::spawn_blocking(move || me.read())
            .await
            .map_err(|e| format!("reading the broker credentials failed: {e}"))??;
        let user = self.username.clone();
        match read.password {
            Some(pw) => {
                o.set_credentials(user.unwrap_or_default(), pw);
            }
            None => {
                if let Some(u) = user {
                    o.set_credentials(u, String::new());
                }
            }
        };
        if let Some(token) = read.token {
            o.set_authentication_method(Some(SAT_METHOD.to_string()));
            o.set_authentication_data(Some(Bytes::from(token)));
        }
        Ok(())
    }

    fn read(&self) -> Result<Held, String> {
        let password = match &self.password_file {
            None => None,
            Some(path) => {
                let pw = String::from_utf8(bounded(path, "password file")?)
                    .map_err(|_| format!("password file {} is not UTF-8", path.display()))?;
                Some(pw.trim_end_matches(['\r', '\n']).to_string())
            }
        };
        let token = match &self.sat_file {
            None => None,
            Some(path) => {
                let token = bounded(path, "service account token file")?;
                let token = token.trim_ascii().to_vec();
                if token.is_empty() {
                    return Err(format!(
                        "service account token file {} is empty",
                        path.display()
                    ));
                }
                Some(token)
            }
        };
        Ok(Held { password, token })
    }
}

/// The bytes of the file `what` at `path`, at most [`FILE_BYTES_MAX`].
fn bounded(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read {what} {}: {}", path.display(), e.kind());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        return Err(format!(
            "{what} {} is over {FILE_BYTES_MAX} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_the_files_at_each_apply_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        let sat = dir.path().join("sat");
        std::fs::write(&pw, "one\n").unwrap();
        std::fs::write(&sat, " token-1 \n").unwrap();
        let c = BrokerCredentials {
            username: Some("u".into()),
            password_file: Some(pw.clone()),
            sat_file: Some(sat.clone()),
        };
        let mut o = MqttOptions::new("id", "h", 1);
        c.apply(&mut o).await.unwrap();
        let login = o.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("u", "one")
        );
        assert_eq!(o.authentication_method().as_deref(), Some(SAT_METHOD));
        assert_eq!(o.authentication_data().as_deref(), Some(&b"token-1"[..]));
        std::fs::write(&sat, "token-2").unwrap();
        c.apply(&mut o).await.unwrap();
        assert_eq!(o.authentication_data().as_deref(), Some(&b"token-2"[..]));
        std::fs::remove_file(&pw).unwrap();
        let e = c.apply(&mut o).await.unwrap_err();
        assert!(e.contains("password file") && !e.contains("one"), "{e}");
    }

    /// What start-up refuses: each names the file and the problem, never the content.
    #[test]
    fn check_refuses_a_missing_directory_oversized_or_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let pw = |p: PathBuf| BrokerCredentials {
            password_file: Some(p),
            ..Default::default()
        };
        let sat = |p: PathBuf| BrokerCredentials {
            sat_file: Some(p),
            ..Default::default()
        };
        let big = vec![b'x'; FILE_BYTES_MAX as usize + 1];
        let cases = [
            (pw(dir.path().join("missing")), "cannot read password file"),
            (pw(dir.path().to_path_buf()), "cannot read password file"),
            (pw(file("big", &big)), "is over 65535 bytes"),
            (pw(file("latin", b"caf\xe9")), "is not UTF-8"),
            (
                sat(dir.path().join("none")),
                "cannot read service account token file",
            ),
            (sat(file("blank", b" \n")), "is empty"),
        ];
        for (c, want) in cases {
            let e = c.check().unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(pw(file("ok", b"secret\n")).check().is_ok());
    }
}
