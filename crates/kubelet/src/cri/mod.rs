//! A thin CRI v1 client (runtime and image services) over containerd's unix socket. The
//! channel connects lazily and reconnects by itself, so a restarted containerd is picked
//! up without rebuilding the client.

use crate::error::{Error, Result};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;
pub use k8s_cri::v1 as api;

/// Responses can list every container of a busy node.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// A cloneable CRI client (clones share one HTTP/2 connection).
#[derive(Clone)]
pub struct Cri {
    rt: RuntimeServiceClient<Channel>,
    img: ImageServiceClient<Channel>,
    socket: PathBuf,
}

/// Accepts `unix:///path`, `unix:/path` or a plain path.
pub fn socket_path(endpoint: &str) -> PathBuf {
    let p = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(endpoint);
    PathBuf::from(p)
}

impl Cri {
    /// A client for the runtime listening on `socket` (no I/O until the first call).
    pub fn new(socket: &Path) -> Result<Cri> {
        let path = socket.to_path_buf();
        let connector = tower::service_fn(move |_: Uri| {
            let p = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(p).await?;
                Ok::<_, std::io::Error>(TokioIo::new(s))
            }
        });
        // The URI is a placeholder: the connector always dials the unix socket.
        let channel = Endpoint::from_static("http://localhost")
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect_with_connector_lazy(connector);
        Ok(Cri {
            rt: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE),
            img: ImageServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            socket: socket.to_path_buf(),
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub async fn version(&self) -> Result<api::VersionResponse> {
        let req = api::VersionRequest {
            version: "v1".into(),
        };
        let r = self.rt.clone().version(req).await;
        Ok(r.map_err(|s| Error::cri("Version", s))?.into_inner())
    }

    pub async fn status(&self) -> Result<api::StatusResponse> {
        let r = self
            .rt
            .clone()
            .status(api::StatusRequest { verbose: false })
            .await;
        Ok(r.map_err(|s| Error::cri("Status", s))?.into_inner())
    }

    pub async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String> {
        let req = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        let r = self.rt.clone().run_pod_sandbox(req).await;
        Ok(r.map_err(|s| Error::cri("RunPodSandbox", s))?
            .into_inner()
            .pod_sandbox_id)
    }

    /// Stops a sandbox (and its containers); an unknown ID is not an error.
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = api::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        match self.rt.clone().stop_pod_sandbox(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(Error::cri("StopPodSandbox", s)),
        }
    }

    /// Removes a sandbox; an unknown ID is not an error.
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = api::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        match self.rt.clone().remove_pod_sandbox(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(Error::cri("RemovePodSandbox", s)),
        }
    }

    /// Status with `info` (verbose: includes the network namespace path).
    pub async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatusResponse> {
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        };
        let r = self.rt.clone().pod_sandbox_status(req).await;
        Ok(r.map_err(|s| Error::cri("PodSandboxStatus", s))?
            .into_inner())
    }

    pub async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>> {
        let r = self
            .rt
            .clone()
            .list_pod_sandbox(api::ListPodSandboxRequest { filter })
            .await;
        Ok(r.map_err(|s| Error::cri("ListPodSandbox", s))?
            .into_inner()
            .items)
    }

    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let r = self.rt.clone().create_container(req).await;
        Ok(r.map_err(|s| Error::cri("CreateContainer", s))?
            .into_inner()
            .container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<()> {
        let req = api::StartContainerRequest {
            container_id: id.into(),
        };
        let r = self.rt.clone().start_container(req).await;
        r.map_err(|s| Error::cri("StartContainer", s))?;
        Ok(())
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout_secs`. An unknown
    /// ID is not an error.
    pub async fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<()> {
        let req = api::StopContainerRequest {
            container_id: id.into(),
            timeout: timeout_secs,
        };
        match self.rt.clone().stop_container(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(Error::cri("StopContainer", s)),
        }
    }

    /// Removes a container; an unknown ID is not an error.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let req = api::RemoveContainerRequest {
            container_id: id.into(),
        };
        match self.rt.clone().remove_container(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(Error::cri("RemoveContainer", s)),
        }
    }

    pub async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>> {
        let r = self
            .rt
            .clone()
            .list_containers(api::ListContainersRequest { filter })
            .await;
        Ok(r.map_err(|s| Error::cri("ListContainers", s))?
            .into_inner()
            .containers)
    }

    /// Makes the runtime reopen a container's log path (after the kubelet renamed it).
    pub async fn reopen_container_log(&self, id: &str) -> Result<()> {
        let req = api::ReopenContainerLogRequest {
            container_id: id.into(),
        };
        let r = self.rt.clone().reopen_container_log(req).await;
        r.map_err(|s| Error::cri("ReopenContainerLog", s))?;
        Ok(())
    }

    /// CPU and memory figures of every container the runtime knows.
    pub async fn list_container_stats(&self) -> Result<Vec<api::ContainerStats>> {
        let req = api::ListContainerStatsRequest { filter: None };
        let r = self.rt.clone().list_container_stats(req).await;
        Ok(r.map_err(|s| Error::cri("ListContainerStats", s))?
            .into_inner()
            .stats)
    }

    pub async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        let req = api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        let r = self.rt.clone().container_status(req).await;
        r.map_err(|s| Error::cri("ContainerStatus", s))?
            .into_inner()
            .status
            .ok_or_else(|| Error::Runtime(format!("container {id}: empty status")))
    }

    /// Runs `cmd` in a container and waits up to `timeout_secs` (0 = no limit).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout_secs: i64,
    ) -> Result<api::ExecSyncResponse> {
        let req = api::ExecSyncRequest {
            container_id: id.into(),
            cmd,
            timeout: timeout_secs,
        };
        let r = self.rt.clone().exec_sync(req).await;
        Ok(r.map_err(|s| Error::cri("ExecSync", s))?.into_inner())
    }

    /// A single-use URL on the runtime's streaming server that runs `req.cmd` in a
    /// container when a client upgrades to it.
    pub async fn exec(&self, req: api::ExecRequest) -> Result<String> {
        let r = self.rt.clone().exec(req).await;
        Ok(r.map_err(|s| Error::cri("Exec", s))?.into_inner().url)
    }

    /// A single-use streaming URL attached to a container's main process.
    pub async fn attach(&self, req: api::AttachRequest) -> Result<String> {
        let r = self.rt.clone().attach(req).await;
        Ok(r.map_err(|s| Error::cri("Attach", s))?.into_inner().url)
    }

    /// A single-use streaming URL forwarding ports into a sandbox's network namespace.
    pub async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String> {
        let req = api::PortForwardRequest {
            pod_sandbox_id: sandbox_id.into(),
            port: ports,
        };
        let r = self.rt.clone().port_forward(req).await;
        Ok(r.map_err(|s| Error::cri("PortForward", s))?
            .into_inner()
            .url)
    }

    /// The image when present locally.
    pub async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        let req = api::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        let r = self.img.clone().image_status(req).await;
        Ok(r.map_err(|s| Error::cri("ImageStatus", s))?
            .into_inner()
            .image)
    }

    /// Pulls an image (with registry credentials when given); returns its reference
    /// (image ID).
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String> {
        let req = api::PullImageRequest {
            image: Some(image_spec(image)),
            auth,
            sandbox_config,
        };
        let r = self.img.clone().pull_image(req).await;
        Ok(r.map_err(|s| Error::cri("PullImage", s))?
            .into_inner()
            .image_ref)
    }

    pub async fn list_images(&self) -> Result<Vec<api::Image>> {
        let r = self
            .img
            .clone()
            .list_images(api::ListImagesRequest { filter: None })
            .await;
        Ok(r.map_err(|s| Error::cri("ListImages", s))?
            .into_inner()
            .images)
    }
}

fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        assert_eq!(
            socket_path("unix:///run/c.sock"),
            PathBuf::from("/run/c.sock")
        );
        assert_eq!(
            socket_path("unix:/run/c.sock"),
            PathBuf::from("/run/c.sock")
        );
        assert_eq!(socket_path("/run/c.sock"), PathBuf::from("/run/c.sock"));
    }
}
