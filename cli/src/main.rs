//! The stock `guiderail` command: shows runs from any store, with no
//! machines compiled in (so `replay` needs a binary of your own; see
//! `guiderail_cli::Cli`).

fn main() -> std::process::ExitCode {
    guiderail_cli::Cli::new().run_from_env()
}
