//! The arguments of `ssectl`, shaped after the Azure CLI: a noun, a verb, then flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::dest::Dest;

/// `ssectl`: manage and watch sse-connector over its gRPC APIs.
#[derive(Debug, Parser)]
#[command(name = "ssectl", version, about)]
pub struct Cli {
    /// Where the services are and how to reach them.
    #[command(flatten)]
    pub conn: Conn,
    /// Output format: a readable table/YAML, or JSON or YAML for scripts.
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value_t = Format::Text,
        global = true,
        help_heading = "Output"
    )]
    pub output: Format,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The services' addresses (each repeatable or a comma list: every replica is asked) and the
/// console's mTLS identity. Under a heading of their own: every verb's help lists them, and
/// mixed in with the verb's own flags they buried those.
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection")]
pub struct Conn {
    /// sse-ingest gRPC addresses (host:port).
    #[arg(
        long,
        env = "SSECTL_INGEST",
        value_delimiter = ',',
        global = true,
        default_value = "127.0.0.1:50051"
    )]
    pub ingest: Vec<String>,
    /// sse-schema gRPC addresses.
    #[arg(
        long,
        env = "SSECTL_SCHEMA",
        value_delimiter = ',',
        global = true,
        default_value = "127.0.0.1:50052"
    )]
    pub schema: Vec<String>,
    /// sse-publisher gRPC addresses.
    #[arg(
        long,
        env = "SSECTL_PUBLISHER",
        value_delimiter = ',',
        global = true,
        default_value = "127.0.0.1:50053"
    )]
    pub publisher: Vec<String>,
    /// CA bundle (PEM) that signs the services' certificates; with --tls-cert and --tls-key
    /// turns on mTLS.
    #[arg(long, env = "SSECTL_TLS_CA", global = true, requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// The console identity's certificate (PEM).
    #[arg(long, env = "SSECTL_TLS_CERT", global = true, requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,
    /// The console identity's private key (PEM).
    #[arg(long, env = "SSECTL_TLS_KEY", global = true, requires = "tls_ca")]
    pub tls_key: Option<PathBuf>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table or YAML, for people.
    Text,
    /// JSON, for scripts.
    Json,
    /// YAML, for scripts and for reading: lists as YAML too, not as tables.
    Yaml,
}

/// The flag every writing verb takes.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Write {
    /// Print the YAML that would be sent to PutResource (or what would be deleted) and change
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The nouns.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Devices and their SSE endpoints.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Assets: what to read from a device and where to publish it.
    #[command(subcommand)]
    Asset(AssetCmd),
    /// Devices' and assets' status, as Azure Device Registry shows it.
    Status {
        /// Only this asset.
        #[arg(long)]
        asset: Option<String>,
    },
    /// Every replica's streams with their counters.
    Streams,
    /// Messages as the publisher publishes them, until Ctrl-C.
    Tail(TailArgs),
    /// The schema registry.
    #[command(subcommand)]
    Schemas(SchemasCmd),
    /// Prints a shell completion script (e.g. `ssectl completions bash > /etc/bash_completion.d/ssectl`).
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `device ...`
#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Creates an empty device.
    Create {
        /// The device's name.
        name: String,
        /// --dry-run.
        #[command(flatten)]
        write: Write,
    },
    /// Endpoints of a device.
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Prints a device.
    Show {
        /// The device's name.
        name: String,
    },
    /// Lists the devices.
    List,
    /// Deletes a device.
    Delete {
        /// The device's name.
        name: String,
        /// --dry-run.
        #[command(flatten)]
        write: Write,
    },
}

/// `device endpoint ...`
#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Adds an endpoint to a device.
    #[command(subcommand)]
    Add(EndpointKind),
}

/// The endpoint types `device endpoint add` knows.
#[derive(Debug, Subcommand)]
pub enum EndpointKind {
    /// A Server-Sent Events endpoint.
    Sse(SseEndpoint),
}

/// `device endpoint add sse ...`
#[derive(Debug, Args)]
pub struct SseEndpoint {
    /// The device to add it to.
    #[arg(long)]
    pub device: String,
    /// The endpoint's name.
    #[arg(long)]
    pub name: String,
    /// The SSE server's URL.
    #[arg(long)]
    pub address: String,
    /// How the connector authenticates to it.
    #[arg(long, value_enum, default_value_t = Auth::Anonymous)]
    pub auth: Auth,
    /// Secret reference (secret/key) of the user name (username-password).
    #[arg(long, required_if_eq("auth", "username-password"))]
    pub username_secret: Option<String>,
    /// Secret reference of the password (username-password).
    #[arg(long, required_if_eq("auth", "username-password"))]
    pub password_secret: Option<String>,
    /// Secret reference of the client certificate (certificate).
    #[arg(long, required_if_eq("auth", "certificate"))]
    pub cert_secret: Option<String>,
    /// Secret reference of the client key (certificate).
    #[arg(long, required_if_eq("auth", "certificate"))]
    pub key_secret: Option<String>,
    /// Trust list (a directory under the connector's --trust-dir) for an https address.
    #[arg(long)]
    pub trust_list: Option<String>,
    /// --dry-run (the device is still read, to show the whole document that would be sent).
    #[command(flatten)]
    pub write: Write,
}

/// `authentication.method` of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Auth {
    /// No credentials.
    Anonymous,
    /// HTTP Basic from two secrets.
    UsernamePassword,
    /// Mutual TLS from two secrets.
    Certificate,
}

/// `asset ...`
#[derive(Debug, Subcommand)]
pub enum AssetCmd {
    /// SSE assets (`asset sse create`).
    #[command(subcommand)]
    Sse(AssetSseCmd),
    /// Prints an asset.
    Show {
        /// The asset's name.
        name: String,
    },
    /// Lists the assets.
    List,
    /// Deletes an asset.
    Delete {
        /// The asset's name.
        name: String,
        /// --dry-run.
        #[command(flatten)]
        write: Write,
    },
}

/// `asset sse ...`
#[derive(Debug, Subcommand)]
pub enum AssetSseCmd {
    /// Creates an asset reading a device's SSE endpoint.
    Create(AssetCreate),
}

/// `asset sse create ...`
#[derive(Debug, Args)]
pub struct AssetCreate {
    /// The asset's name.
    pub name: String,
    /// The device it reads.
    #[arg(long)]
    pub device: String,
    /// The device's endpoint.
    #[arg(long)]
    pub endpoint: String,
    /// Where its messages go: topic=T [qos=Qos1] [retain=Never] [ttl=3600].
    #[arg(long, num_args = 1.., value_parser = crate::dest::parse_pair)]
    pub dataset_dest: Vec<(String, String)>,
    /// An event: NAME=SSE_TYPE (repeatable; all go in one event group).
    #[arg(long = "event", value_parser = crate::dest::parse_event)]
    pub events: Vec<(String, String)>,
    /// --dry-run.
    #[command(flatten)]
    pub write: Write,
}

impl AssetCreate {
    /// The destination its `--dataset-dest` pairs describe, if any.
    pub fn dest(&self) -> Result<Option<Dest>, crate::dest::DestError> {
        if self.dataset_dest.is_empty() {
            return Ok(None);
        }
        Dest::from_pairs(&self.dataset_dest).map(Some)
    }
}

/// `tail ...`
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only this asset's messages.
    #[arg(long)]
    pub asset: Option<String>,
    /// Only this device's messages.
    #[arg(long)]
    pub device: Option<String>,
    /// Only topics matching this MQTT filter.
    #[arg(long)]
    pub topic: Option<String>,
    /// Payload bytes printed per message at most, 1 to 16384 (the publisher's cap).
    #[arg(long, default_value_t = crate::watch::TAIL_MAX_PAYLOAD_BYTES, value_parser = clap::value_parser!(u32).range(1..=sse_contract::limits::TAIL_PAYLOAD_BYTES_MAX as i64))]
    pub max_payload_bytes: u32,
}

/// `schemas ...`
#[derive(Debug, Subcommand)]
pub enum SchemasCmd {
    /// Lists the registry's schemas and the subjects that use them.
    List,
    /// Prints a subject's (or schema name's) schema.
    Show {
        /// The subject or schema name.
        subject: String,
        /// A version other than the latest.
        #[arg(long)]
        version: Option<String>,
    },
    /// What changed, field by field, between two versions of a subject (by default its latest
    /// two).
    Diff {
        /// The subject (`asset/dataset` or `asset/group/event`).
        subject: String,
        /// The older version (default: the one before --to).
        #[arg(long)]
        from: Option<String>,
        /// The newer version (default: the latest).
        #[arg(long)]
        to: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The help of `ssectl asset sse create`, as `-h` prints it.
    fn create_help() -> String {
        let mut cmd = Cli::command();
        cmd.build();
        let create = cmd
            .find_subcommand_mut("asset")
            .and_then(|a| a.find_subcommand_mut("sse"))
            .and_then(|s| s.find_subcommand_mut("create"))
            .expect("asset sse create");
        create.render_help().to_string()
    }

    #[test]
    fn a_verbs_help_lists_its_own_flags_before_the_connection_flags() {
        let help = create_help();
        let at = |needle: &str| {
            help.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing from:\n{help}"))
        };
        let connection = at("\nConnection:\n");
        let output = at("\nOutput:\n");
        for own in [
            "--device",
            "--endpoint",
            "--dataset-dest",
            "--event",
            "--dry-run",
        ] {
            assert!(at(own) < connection, "{own} under Connection:\n{help}");
        }
        for conn in [
            "--ingest",
            "--schema",
            "--publisher",
            "--tls-ca",
            "--tls-cert",
            "--tls-key",
        ] {
            assert!(
                (connection..output).contains(&at(conn)),
                "{conn} outside Connection:\n{help}"
            );
        }
        assert!(at("--output") > output, "--output outside Output:\n{help}");
    }

    /// Every help text of `cmd` and its subcommands (about, long about, arguments' help), with
    /// the command path it belongs to.
    fn help_texts(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        let texts = [cmd.get_about(), cmd.get_long_about()]
            .into_iter()
            .flatten()
            .chain(cmd.get_arguments().filter_map(|a| a.get_help()));
        out.extend(texts.map(|t| (path.to_owned(), t.to_string())));
        for sub in cmd.get_subcommands() {
            help_texts(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_command_a_help_text_names_exists() {
        let cmd = Cli::command();
        let tops: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().into()).collect();
        let mut texts = Vec::new();
        help_texts(&cmd, "ssectl", &mut texts);
        let mut named = 0;
        for (path, text) in &texts {
            // Backticked phrases that start with one of ssectl's nouns: `asset sse create`.
            for quoted in text.split('`').skip(1).step_by(2) {
                let words: Vec<&str> = quoted.split_whitespace().collect();
                if !words.first().is_some_and(|w| tops.iter().any(|t| t == w)) {
                    continue;
                }
                named += 1;
                let verbs = words.iter().take_while(|w| !w.starts_with('-'));
                let args = ["ssectl"]
                    .into_iter()
                    .chain(verbs.copied())
                    .chain(["--help"]);
                let e = Cli::command()
                    .try_get_matches_from(args)
                    .expect_err("--help ends parsing");
                assert_eq!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp,
                    "the help of `{path}` names `{quoted}`, which is not a command: {e}"
                );
            }
        }
        assert!(named > 0, "no help text names a command");
    }

    /// `--max-payload-bytes 0` once asked the publisher for "its limit" (proto3's zero), so it
    /// printed up to 16 KiB per message where the default prints 4 KiB.
    #[test]
    fn tail_payload_bytes_are_one_to_the_publishers_cap() {
        use clap::Parser;
        let parse = |n: &str| Cli::try_parse_from(["ssectl", "tail", "--max-payload-bytes", n]);
        for bad in ["0", "16385"] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{e}");
            assert!(e.to_string().contains("1..=16384"), "{e}");
        }
        assert!(parse("1").is_ok() && parse("16384").is_ok());
    }
}
