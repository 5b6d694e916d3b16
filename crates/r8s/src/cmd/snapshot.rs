//! `r8s snapshot save|restore`: online backup and restore of the embedded store.

use crate::cli::SnapshotAction;
use anyhow::Context;

/// Run a snapshot action.
pub async fn run(action: SnapshotAction) -> anyhow::Result<()> {
    match action {
        SnapshotAction::Save { data, file } => {
            let db = super::sqlite_path(&data.data_dir);
            if !db.exists() {
                anyhow::bail!(
                    "no embedded datastore at {} (is --data-dir right?)",
                    db.display()
                );
            }
            r8s_store::snapshot::save(&db, &file)
                .await
                .with_context(|| {
                    format!("saving snapshot of {} to {}", db.display(), file.display())
                })?;
            println!("snapshot saved to {}", file.display());
        }
        SnapshotAction::Restore { data, file } => {
            let db = super::sqlite_path(&data.data_dir);
            r8s_store::snapshot::restore(&file, &db)
                .await
                .with_context(|| format!("restoring {} into {}", file.display(), db.display()))?;
            println!("snapshot {} restored into {}", file.display(), db.display());
        }
    }
    Ok(())
}
