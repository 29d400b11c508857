//! `duffy config check` and `duffy config dump`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::{self, LoadedConfig};
use crate::legacy::Legacy;

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and list its sections.
    Check,
    /// Print the merged configuration as YAML.
    Dump,
}

/// Runs a `config` subcommand on an already validated configuration (an invalid one never
/// gets here: loading failed and said why).
pub fn run(command: ConfigCommand, loaded: &LoadedConfig) -> ExitCode {
    match command {
        ConfigCommand::Check if loaded.embedded => {
            println!("Configuration is empty.");
            println!(
                "No configuration file found: `duffy serve` runs on the embedded default \
                 (`duffy config dump` shows it)."
            );
        }
        ConfigCommand::Check if loaded.sections.is_empty() => println!("Configuration is empty."),
        ConfigCommand::Check => {
            // The v2 layer compiles its regexes and templates only when it starts; check them
            // here too, so a typo shows before `serve --legacy` or `serve-legacy` meets it.
            let probe = format!("{}/api/v1", super::serve::DEFAULT_DEST);
            if let Err(e) = Legacy::new(&loaded.config.metaclient, &probe) {
                eprintln!("Error: {e}");
                return ExitCode::FAILURE;
            }
            println!("OK.");
            println!(
                "Validated configuration subkeys: {}",
                loaded.sections.join(", ")
            );
        }
        ConfigCommand::Dump => {
            if loaded.embedded {
                println!("# the embedded default configuration (no configuration file found)");
            }
            print!("{}", config::dump_yaml(&loaded.raw));
        }
    }
    ExitCode::SUCCESS
}
