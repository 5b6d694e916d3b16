//! What each subcommand does.

mod datastore;
mod images;
pub mod server;
mod simnodes;
mod snapshot;

use crate::cli::Command;

/// Run a subcommand to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Server(args) => server::run(args).await,
        Command::Snapshot { action } => snapshot::run(action).await,
        Command::Datastore { action } => datastore::run(action).await,
        Command::SimNodes(args) => simnodes::run(args).await,
        Command::Images { action } => images::run(action).await,
    }
}

/// `DATA_DIR/server/db/state.db`.
pub fn sqlite_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("server").join("db").join("state.db")
}
