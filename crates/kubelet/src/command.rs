//! Running the node's networking tools (`iptables-restore`, `nft`) with a script on stdin.

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs `program args…` with `input` on its stdin; its stderr is the error when it fails.
pub async fn feed(program: &str, args: &[&str], input: &str) -> std::io::Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn stdin_reaches_the_program_and_stderr_is_the_error() {
        assert!(
            super::feed("sh", &["-c", "read x; test \"$x\" = hi"], "hi\n")
                .await
                .is_ok()
        );
        let err = super::feed("sh", &["-c", "echo bad >&2; exit 1"], "")
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "bad");
    }
}
