//! `r8s images import`: load image archives into the agent's containerd (air-gap).

use crate::cli::ImagesAction;
use anyhow::Context;

/// Run an images action.
pub async fn run(action: ImagesAction) -> anyhow::Result<()> {
    match action {
        ImagesAction::Import {
            data,
            socket,
            files,
        } => {
            let socket = socket.unwrap_or_else(|| r8s_kubelet::default_socket(&data.data_dir));
            if !socket.exists() {
                anyhow::bail!(
                    "no containerd socket at {} (is `r8s server` running with its agent, and --data-dir right?)",
                    socket.display()
                );
            }
            r8s_kubelet::import_images(&socket, &files)
                .await
                .with_context(|| {
                    format!(
                        "importing {} archive(s) through {}",
                        files.len(),
                        socket.display()
                    )
                })?;
            for f in &files {
                println!("imported {}", f.display());
            }
        }
    }
    Ok(())
}
