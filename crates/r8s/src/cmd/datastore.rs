//! `r8s datastore migrate --to URL`: copy the embedded store into etcd.

use crate::cli::DatastoreAction;
use anyhow::Context;

/// Run a datastore action.
pub async fn run(action: DatastoreAction) -> anyhow::Result<()> {
    match action {
        DatastoreAction::Migrate { data, to, force } => {
            let db = super::sqlite_path(&data.data_dir);
            if !db.exists() {
                anyhow::bail!("no embedded datastore at {} (is --data-dir right?)", db.display());
            }
            if !(to.starts_with("http://") || to.starts_with("https://")) {
                anyhow::bail!("--to must be etcd endpoints like http://127.0.0.1:2379, got {to:?}");
            }
            let from = r8s_store::open("", &db).await.context("opening the embedded datastore")?;
            let target = r8s_store::open(&to, &db).await.with_context(|| format!("connecting to etcd at {to}"))?;
            let report = r8s_store::migrate::migrate(from.as_ref(), target.as_ref(), force)
                .await
                .context("migrating")?;
            println!("{report}");
        }
    }
    Ok(())
}
