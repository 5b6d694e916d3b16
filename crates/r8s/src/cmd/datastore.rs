//! `r8s datastore migrate --to URL`: copy the embedded store into etcd.

use crate::cli::DatastoreAction;
use anyhow::Context;

/// Run a datastore action.
pub async fn run(action: DatastoreAction) -> anyhow::Result<()> {
    match action {
        DatastoreAction::Migrate { data, to, force } => {
            let db = super::sqlite_path(&data.data_dir);
            if !db.exists() {
                anyhow::bail!(
                    "no embedded datastore at {} (is --data-dir right?)",
                    db.display()
                );
            }
            if !(to.starts_with("http://") || to.starts_with("https://")) {
                anyhow::bail!("--to must be etcd endpoints like http://127.0.0.1:2379, got {to:?}");
            }
            let from = r8s_store::open("", &db)
                .await
                .context("opening the embedded datastore")?;
            let target = r8s_store::open(&to, &db)
                .await
                .with_context(|| format!("connecting to etcd at {to}"))?;
            let opts = r8s_store::migrate::MigrateOptions {
                force,
                ..Default::default()
            };
            let mut last_percent = u64::MAX;
            let mut progress = |p: r8s_store::migrate::MigrateProgress| {
                let percent = (p.copied * 100).checked_div(p.total).unwrap_or(100);
                if percent / 10 != last_percent / 10 {
                    eprintln!("migrated {}/{} keys", p.copied, p.total);
                    last_percent = percent;
                }
            };
            let report =
                r8s_store::migrate::migrate(from.as_ref(), target.as_ref(), &opts, &mut progress)
                    .await
                    .context("migrating")?;
            println!(
                "migrated {} keys ({} bytes, {} leased keys) from the embedded store at revision {} into etcd {to}",
                report.keys, report.bytes, report.leased_keys, report.source_revision
            );
        }
    }
    Ok(())
}
