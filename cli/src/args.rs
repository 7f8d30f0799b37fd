//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Shows the durable runs of guiderail machines: lists them, prints a run's
/// timeline and graph, exports and imports histories, writes HTML reports,
/// and replays runs of the machines compiled into this binary.
#[derive(Debug, Parser)]
#[command(name = "guiderail", version, about, long_about = None)]
pub(crate) struct Command {
    #[command(subcommand)]
    pub(crate) action: Action,
}

/// Where the runs are stored.
#[derive(Debug, Clone, Args)]
pub(crate) struct Db {
    /// The store: a SQLite file, or a `postgres://` URL.
    #[arg(long, env = "GUIDERAIL_DB", value_name = "FILE|URL")]
    pub(crate) db: String,
    /// With a `postgres://` URL: the schema the runs are in.
    #[arg(
        long,
        env = "GUIDERAIL_PG_SCHEMA",
        default_value = "guiderail",
        value_name = "NAME"
    )]
    pub(crate) schema: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// A table of the stored runs.
    Runs {
        #[command(flatten)]
        db: Db,
        /// Only runs with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
    },
    /// A run's timeline: every step's move, who decided it, how long it
    /// took and what it cost, then how the run ended.
    Show {
        /// The run id.
        run: String,
        #[command(flatten)]
        db: Db,
    },
    /// A machine's graph, as stored with a run (its path highlighted in
    /// `svg`) or, with `--machine`, of a machine compiled into this binary.
    Graph {
        /// The run id.
        #[arg(required_unless_present = "machine", conflicts_with = "machine")]
        run: Option<String>,
        /// The store (needed with a run id).
        #[arg(long, env = "GUIDERAIL_DB", value_name = "FILE|URL")]
        db: Option<String>,
        /// With a `postgres://` URL: the schema the runs are in.
        #[arg(
            long,
            env = "GUIDERAIL_PG_SCHEMA",
            default_value = "guiderail",
            value_name = "NAME"
        )]
        schema: String,
        /// A machine compiled into this binary, by name.
        #[arg(long, value_name = "NAME")]
        machine: Option<String>,
        /// The output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// A run's history as JSON Lines, one event a line, on stdout.
    Export {
        /// The run id.
        run: String,
        #[command(flatten)]
        db: Db,
    },
    /// Stores a run exported with `export`; refuses a run the store holds.
    Import {
        /// The JSON Lines file (`-` for stdin).
        file: PathBuf,
        #[command(flatten)]
        db: Db,
        /// Create the SQLite file if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// One self-contained HTML page: the graph with the run's path and the
    /// timeline with every model exchange.
    Report {
        /// The run id.
        run: String,
        #[command(flatten)]
        db: Db,
        /// The HTML file to write (stdout if not given).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Creates or upgrades a store's schema (for deploy steps where the
    /// application's database user may not create tables): a PostgreSQL
    /// schema, or a SQLite file (created if missing).
    Migrate {
        #[command(flatten)]
        db: Db,
    },
    /// Replays a run with a machine compiled into this binary and reports
    /// the first difference from the record (exit code 1 if there is one).
    Replay {
        /// The run id.
        run: String,
        #[command(flatten)]
        db: Db,
    },
}

/// A run status, as `--status` takes it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StatusArg {
    Running,
    Waiting,
    Finished,
    Failed,
}

/// What `graph` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    /// Mermaid `stateDiagram-v2` text.
    Mermaid,
    /// Graphviz DOT text.
    Dot,
    /// The stored graph record as JSON.
    Json,
    /// An SVG picture, laid out in-process.
    Svg,
}
