//! Images without a registry: writing image archives from Rust (busybox-based test and
//! sandbox images) and importing archives into containerd.

pub mod archive;
pub mod busybox;
pub mod import;

pub use archive::{ArchiveInfo, ImageConfig, Layer, LayerEntry, write_archive};
pub use busybox::{
    BUSYBOX_IMAGE, NGINX_IMAGE, PAUSE_IMAGE, build_busybox_image, build_default_images,
    build_nginx_image, build_pause_image, busybox_layer,
};
pub use import::{archives_in, import, import_all};
