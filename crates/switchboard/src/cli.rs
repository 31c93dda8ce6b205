//! The command line (`serve`, `check-config`) and how its flags become config sources.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{CONFIG_FILE_ENV, SET_FLAG, Sources};

/// Switchboard: a standalone Socket.IO server.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Accept Socket.IO connections, with /health/live, /health/ready and /metrics on
    /// the same listener.
    Serve(ServeArgs),
    /// Validate a config file (with SWITCHBOARD_* variables applied) and print the
    /// effective settings; exit status 64 and every error if it is invalid.
    CheckConfig(CheckConfigArgs),
}

/// `serve` flags. Flags win over environment variables, which win over the file.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML config file.
    #[arg(long, value_name = "FILE", env = CONFIG_FILE_ENV)]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:0 [default: 0.0.0.0:3000].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log filter, e.g. debug or warn,switchboard_engine=debug [default: info].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Any setting by its dotted key, e.g. --set engine.ping_interval=5s (repeatable;
    /// the named flags above win over it).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ServeArgs {
    /// The config sources: these flags over `env` over the file.
    pub(crate) fn sources(&self, env: Vec<(String, String)>) -> Sources {
        let sets = self.set.iter().map(|s| (SET_FLAG, s));
        let named = [
            ("--listen", &self.listen),
            ("--log-format", &self.log_format),
            ("--log-level", &self.log_level),
        ];
        let named = named
            .into_iter()
            .filter_map(|(flag, value)| value.as_ref().map(|v| (flag, v)));
        Sources {
            file: self.config.clone(),
            env,
            flags: sets
                .chain(named)
                .map(|(flag, value)| (flag.to_owned(), value.clone()))
                .collect(),
        }
    }
}

/// `check-config` arguments.
#[derive(Debug, Args)]
pub(crate) struct CheckConfigArgs {
    /// The TOML file to check.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
}

impl CheckConfigArgs {
    /// The config sources: the file and `env`, as `serve --config FILE` would see them.
    pub(crate) fn sources(&self, env: Vec<(String, String)>) -> Sources {
        Sources {
            file: Some(self.file.clone()),
            env,
            flags: Vec::new(),
        }
    }
}

/// The process environment. Values that are not UTF-8 are kept lossily, so a broken
/// `SWITCHBOARD_*` value is reported by validation rather than silently skipped.
pub(crate) fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_flags_come_after_set_so_they_win() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from([
            "switchboard",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--set",
            "listen=127.0.0.1:1",
            "--set",
            "engine.path=/rt/",
        ])?;
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        let sources = args.sources(Vec::new());
        let flags: Vec<(&str, &str)> = sources
            .flags
            .iter()
            .map(|(f, v)| (f.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            flags,
            [
                ("--set", "listen=127.0.0.1:1"),
                ("--set", "engine.path=/rt/"),
                ("--listen", "127.0.0.1:0"),
            ]
        );
        Ok(())
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
