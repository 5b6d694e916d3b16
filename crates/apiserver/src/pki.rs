//! Cluster PKI: the CA, the API server's serving certificate, the admin client
//! certificate and the join token, created on first start under
//! `<data_dir>/server/tls/` and reused afterwards.
//!
//! One CA signs everything (k3s splits server and client CAs; a single CA keeps the
//! kubeconfig and the agents' trust simple). On restart the CA is never replaced;
//! leaf certificates are re-issued from it when they are missing, do not belong to
//! the CA, expire within [`RENEW_BEFORE_SECS`], or (serving cert) carry a different
//! SAN set than requested.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rand::RngCore as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use x509_parser::extensions::{GeneralName, ParsedExtension};

const DAY_SECS: u64 = 24 * 60 * 60;
/// CA lifetime: ten years.
const CA_VALIDITY_SECS: u64 = 3650 * DAY_SECS;
/// Leaf lifetime: one year (as k3s).
const LEAF_VALIDITY_SECS: u64 = 365 * DAY_SECS;
/// Leaves are re-issued at start when they expire within 90 days (k3s's window).
pub const RENEW_BEFORE_SECS: u64 = 90 * DAY_SECS;
/// Backdating tolerates small clock differences between server and clients.
const BACKDATE_SECS: u64 = 60 * 60;

/// The in-cluster names of the `kubernetes` Service, always in the serving cert.
const SERVICE_DNS_NAMES: [&str; 4] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("a certificate can carry at most 2 organizations (groups), {0} requested")]
    TooManyOrganizations(usize),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Names and addresses the serving certificate must cover besides the fixed ones
/// (`localhost`, `127.0.0.1`, `::1` and the `kubernetes.default…` names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanConfig {
    /// The machine's host name; [`SanConfig::new`] fills it from the kernel.
    pub hostname: Option<String>,
    /// Node / bind / advertise addresses.
    pub ips: Vec<IpAddr>,
    /// Extra DNS names (`--tls-san`).
    pub dns_names: Vec<String>,
    /// First address of the service CIDR, the ClusterIP of `default/kubernetes`.
    pub service_ip: Option<IpAddr>,
}

impl SanConfig {
    /// SANs for this host, with the given extra addresses and service IP.
    pub fn new(ips: Vec<IpAddr>, service_ip: Option<IpAddr>) -> Self {
        SanConfig {
            hostname: detect_hostname(),
            ips,
            dns_names: Vec::new(),
            service_ip,
        }
    }

    /// The full, normalised SAN set (DNS names lower-cased, IPs in canonical form).
    pub fn names(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .chain(SERVICE_DNS_NAMES)
            .map(str::to_string)
            .collect();
        if let Some(h) = &self.hostname {
            out.insert(h.to_ascii_lowercase());
        }
        out.extend(self.dns_names.iter().map(|d| d.to_ascii_lowercase()));
        out.extend(self.ips.iter().map(IpAddr::to_string));
        out.extend(self.service_ip.iter().map(IpAddr::to_string));
        out.retain(|n| !n.is_empty() && n.is_ascii());
        out
    }
}

/// The kernel's host name, if it has a usable one.
pub fn detect_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .find(|s| !s.is_empty() && s.is_ascii())
}

/// The first host address of a CIDR (`10.43.0.0/16` → `10.43.0.1`), which Kubernetes
/// reserves for the `kubernetes` Service.
pub fn first_service_ip(cidr: &str) -> Option<IpAddr> {
    let (addr, prefix) = cidr.trim().split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    match addr {
        IpAddr::V4(a) if prefix < 32 => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            Some(IpAddr::from(
                (u32::from(a) & mask).wrapping_add(1).to_be_bytes(),
            ))
        }
        IpAddr::V6(a) if prefix < 128 => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            Some(IpAddr::from(
                (u128::from(a) & mask).wrapping_add(1).to_be_bytes(),
            ))
        }
        _ => None,
    }
}

/// The cluster's key material, as PEM strings.
#[derive(Clone)]
pub struct Pki {
    pub ca_pem: String,
    pub ca_key: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    /// The join token (32 hex characters), also in `<data_dir>/server/token`.
    pub token: String,
}

impl std::fmt::Debug for Pki {
    // Keys and token stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// `<data_dir>/server/tls`.
pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("server").join("tls")
}

/// Loads the PKI from `<data_dir>/server`, creating or renewing what is missing.
///
/// A CA that exists but cannot be read is an error rather than being replaced:
/// replacing it would silently invalidate every kubeconfig and agent.
pub fn load_or_create(data_dir: &Path, sans: &SanConfig) -> Result<Pki, PkiError> {
    let dir = tls_dir(data_dir);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    fs::set_permissions(&dir, Permissions::from_mode(0o700)).map_err(io_err(&dir))?;

    let (ca_crt_path, ca_key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    let (ca_pem, ca_key, ca_new) = match (read_opt(&ca_crt_path)?, read_opt(&ca_key_path)?) {
        (Some(c), Some(k)) => {
            let parsed = parse_cert(&c, &ca_crt_path)?;
            check_key_matches(&parsed, &k, &ca_key_path)?;
            (c, k, false)
        }
        (None, None) => {
            let (c, k) = generate_ca()?;
            write_file(&ca_key_path, k.as_bytes(), 0o600)?;
            write_file(&ca_crt_path, c.as_bytes(), 0o644)?;
            (c, k, true)
        }
        _ => {
            return Err(PkiError::Invalid {
                path: dir,
                reason: "only one of ca.crt and ca.key exists".into(),
            });
        }
    };
    let ca_ski = parse_cert(&ca_pem, &ca_crt_path)?.ski;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key)?)?;

    let want_sans = sans.names();
    let (serving_cert_pem, serving_key_pem) = load_or_issue(
        &dir.join("serving.crt"),
        &dir.join("serving.key"),
        ca_new,
        |p| p.aki == ca_ski && p.sans == want_sans,
        || issue(&issuer, &LeafSpec::serving(&want_sans)),
    )?;
    let (admin_cert_pem, admin_key_pem) = load_or_issue(
        &dir.join("admin.crt"),
        &dir.join("admin.key"),
        ca_new,
        |p| p.aki == ca_ski && p.cn == ["system:admin"] && p.orgs == ["system:masters"],
        || {
            issue(
                &issuer,
                &LeafSpec::client("system:admin", &["system:masters"]),
            )
        },
    )?;

    let token_path = data_dir.join("server").join("token");
    let token = match read_opt(&token_path)?.map(|t| t.trim().to_string()) {
        Some(t) if !t.is_empty() => t,
        _ => {
            let t = random_hex(16);
            write_file(&token_path, format!("{t}\n").as_bytes(), 0o600)?;
            t
        }
    };

    Ok(Pki {
        ca_pem,
        ca_key,
        serving_cert_pem,
        serving_key_pem,
        admin_cert_pem,
        admin_key_pem,
        token,
    })
}

/// Reuses a leaf pair if it is readable, matches `fits` and is not near expiry;
/// otherwise issues a new one with `make` and writes it.
fn load_or_issue(
    crt_path: &Path,
    key_path: &Path,
    force: bool,
    fits: impl Fn(&ParsedCert) -> bool,
    make: impl FnOnce() -> Result<(String, String), PkiError>,
) -> Result<(String, String), PkiError> {
    let existing = match (force, read_opt(crt_path)?, read_opt(key_path)?) {
        (false, Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    let reusable = |(c, k): &(String, String)| {
        parse_cert(c, crt_path).is_ok_and(|p| {
            fits(&p)
                && check_key_matches(&p, k, key_path).is_ok()
                && p.not_after > now_secs().saturating_add(RENEW_BEFORE_SECS) as i64
        })
    };
    if let Some(pair) = existing.filter(reusable) {
        return Ok(pair);
    }
    let (c, k) = make()?;
    write_file(key_path, k.as_bytes(), 0o600)?;
    write_file(crt_path, c.as_bytes(), 0o644)?;
    Ok((c, k))
}

impl Pki {
    /// Issues a client certificate (CN = user, O = groups) signed by the cluster CA,
    /// e.g. `("system:node:n1", ["system:nodes"])` for a node agent. Valid one year.
    /// At most two organizations (an rcgen limitation).
    pub fn sign_client_cert(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<(String, String), PkiError> {
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, KeyPair::from_pem(&self.ca_key)?)?;
        issue(&issuer, &LeafSpec::client(common_name, organizations))
    }

    /// Issues a serving certificate (serverAuth) for the given DNS names and IP
    /// addresses, signed by the cluster CA and valid one year, e.g. a kubelet's: the API
    /// server verifies kubelets against the cluster CA. CN is the first DNS name (else
    /// the first address). Returns (certificate PEM, key PEM).
    pub fn sign_serving_cert(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
    ) -> Result<(String, String), PkiError> {
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, KeyPair::from_pem(&self.ca_key)?)?;
        let sans: Vec<String> = dns_names
            .iter()
            .cloned()
            .chain(ips.iter().map(IpAddr::to_string))
            .collect();
        let spec = LeafSpec {
            cn: sans
                .first()
                .cloned()
                .unwrap_or_else(|| "r8s-serving".into()),
            orgs: Vec::new(),
            sans,
            server: true,
        };
        issue(&issuer, &spec)
    }

    /// Writes a kubeconfig (cluster, user and context all named `default`) that
    /// authenticates with the admin client certificate. File mode 0600.
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> io::Result<()> {
        let yaml = self.kubeconfig_yaml(server_url)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        write_file(path, yaml.as_bytes(), 0o600).map_err(|e| match e {
            PkiError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })
    }

    /// The kubeconfig document [`Pki::write_kubeconfig`] writes.
    pub fn kubeconfig_yaml(&self, server_url: &str) -> io::Result<String> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "default", "cluster": {
                "server": server_url,
                "certificate-authority-data": b64(&self.ca_pem),
            }}],
            "users": [{"name": "default", "user": {
                "client-certificate-data": b64(&self.admin_cert_pem),
                "client-key-data": b64(&self.admin_key_pem),
            }}],
            "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
            "current-context": "default",
            "preferences": {},
        });
        serde_yaml::to_string(&doc).map_err(io::Error::other)
    }
}

/// What a leaf certificate says about itself.
struct LeafSpec {
    cn: String,
    orgs: Vec<String>,
    sans: Vec<String>,
    server: bool,
}

impl LeafSpec {
    fn serving(sans: &BTreeSet<String>) -> Self {
        LeafSpec {
            cn: "r8s-apiserver".into(),
            orgs: Vec::new(),
            sans: sans.iter().cloned().collect(),
            server: true,
        }
    }

    fn client(cn: &str, orgs: &[&str]) -> Self {
        LeafSpec {
            cn: cn.into(),
            orgs: orgs.iter().map(|o| o.to_string()).collect(),
            sans: Vec::new(),
            server: false,
        }
    }
}

fn generate_ca() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = base_params(CA_VALIDITY_SECS);
    params.distinguished_name.push(DnType::CommonName, "r8s-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issue(issuer: &Issuer<'_, KeyPair>, spec: &LeafSpec) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = base_params(LEAF_VALIDITY_SECS);
    params
        .distinguished_name
        .push(DnType::CommonName, spec.cn.as_str());
    // rcgen keeps one value per attribute type, so a second O goes in under the same
    // OID spelled as a custom type; a third cannot be expressed.
    let org_types = [
        DnType::OrganizationName,
        DnType::CustomDnType(vec![2, 5, 4, 10]),
    ];
    if spec.orgs.len() > org_types.len() {
        return Err(PkiError::TooManyOrganizations(spec.orgs.len()));
    }
    for (ty, o) in org_types.into_iter().zip(&spec.orgs) {
        params.distinguished_name.push(ty, o.as_str());
    }
    params.subject_alt_names = spec
        .sans
        .iter()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(s.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![if spec.server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn base_params(validity_secs: u64) -> CertificateParams {
    let now = now_secs();
    let mut params = CertificateParams::default();
    // Default carries a placeholder CN; every caller pushes its own.
    params.distinguished_name = rcgen::DistinguishedName::new();
    // rcgen takes `time` values; an offset from the epoch avoids depending on `time`.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(now.saturating_sub(BACKDATE_SECS));
    params.not_after = epoch + Duration::from_secs(now.saturating_add(validity_secs));
    let mut serial = [0u8; 16];
    rand::rng().fill_bytes(&mut serial);
    serial[0] &= 0x7f; // keep the INTEGER positive
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The parts of a certificate the reuse decision looks at.
#[derive(Debug)]
pub(crate) struct ParsedCert {
    pub not_after: i64,
    pub sans: BTreeSet<String>,
    pub ski: Option<Vec<u8>>,
    pub aki: Option<Vec<u8>>,
    pub public_key: Vec<u8>,
    pub cn: Vec<String>,
    pub orgs: Vec<String>,
}

pub(crate) fn parse_cert(pem: &str, path: &Path) -> Result<ParsedCert, PkiError> {
    let invalid = |reason: String| PkiError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| invalid(format!("no PEM certificate: {e}")))?;
    parse_der(&der).map_err(invalid)
}

pub(crate) fn parse_der(der: &[u8]) -> Result<ParsedCert, String> {
    let (_, x) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("bad certificate: {e}"))?;
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let mut out = ParsedCert {
        not_after: x.validity().not_after.timestamp(),
        sans: BTreeSet::new(),
        ski: None,
        aki: None,
        public_key: x.public_key().subject_public_key.data.to_vec(),
        cn: strings(&mut x.subject().iter_common_name()),
        orgs: strings(&mut x.subject().iter_organization()),
    };
    for ext in x.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => out.ski = Some(k.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                out.aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for n in &san.general_names {
                    match n {
                        GeneralName::DNSName(d) => {
                            out.sans.insert(d.to_ascii_lowercase());
                        }
                        GeneralName::IPAddress(b) => {
                            if let Ok(a) = <[u8; 4]>::try_from(*b) {
                                out.sans.insert(IpAddr::from(a).to_string());
                            } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                                out.sans.insert(IpAddr::from(a).to_string());
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn check_key_matches(cert: &ParsedCert, key_pem: &str, key_path: &Path) -> Result<(), PkiError> {
    let invalid = |reason: String| PkiError::Invalid {
        path: key_path.to_path_buf(),
        reason,
    };
    let key = KeyPair::from_pem(key_pem).map_err(|e| invalid(format!("bad key: {e}")))?;
    if key.public_key_raw() == cert.public_key.as_slice() {
        Ok(())
    } else {
        Err(invalid("key does not match its certificate".into()))
    }
}

fn read_opt(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes via a temporary file and rename, so a crash never leaves half a key, and
/// forces `mode` even when the file already existed or the umask is loose.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(io_err(path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
