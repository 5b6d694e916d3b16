//! Placeholder: the garbage_collector controller (being written).

use crate::Context;

/// Run the controller until a fatal error.
pub async fn run(_ctx: Context) -> anyhow::Result<()> {
    std::future::pending::<()>().await;
    Ok(())
}
