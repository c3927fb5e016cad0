//! Broker credentials read at every connect, for every MQTT client of the connector (the
//! publisher, ingest's checkpoint store, the schema registry client): a rotated password or
//! service account token is used on the next connection without a restart.

use std::path::PathBuf;

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

impl BrokerCredentials {
    /// Reads the files and puts the credentials into `o` for the next connect. Errors name the
    /// file, never its content.
    pub async fn apply(&self, o: &mut MqttOptions) -> Result<(), String> {
        let user = self.username.clone();
        match &self.password_file {
            None => {
                if let Some(u) = user {
                    o.set_credentials(u, String::new());
                }
            }
            Some(path) => {
                let pw = tokio::fs::read_to_string(path).await.map_err(|e| {
                    format!("cannot read password file {}: {}", path.display(), e.kind())
                })?;
                let pw = pw.trim_end_matches(['\r', '\n']).to_string();
                o.set_credentials(user.unwrap_or_default(), pw);
            }
        }
        if let Some(path) = &self.sat_file {
            let token = tokio::fs::read(path).await.map_err(|e| {
                format!(
                    "cannot read service account token file {}: {}",
                    path.display(),
                    e.kind()
                )
            })?;
            let token = token.trim_ascii().to_vec();
            if token.is_empty() {
                return Err(format!(
                    "service account token file {} is empty",
                    path.display()
                ));
            }
            o.set_authentication_method(Some(SAT_METHOD.to_string()));
            o.set_authentication_data(Some(Bytes::from(token)));
        }
        Ok(())
    }
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
}
