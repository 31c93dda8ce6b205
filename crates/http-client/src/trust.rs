//! The root certificate store of the trust policy: the system's roots plus an optional
//! PEM CA file. Reads files; no network.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::BuildError;

/// The system's root certificates (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`) and
/// those of `ca_file`. An unreadable system certificate is skipped (logged at `debug`),
/// a bad CA file is an error, and so is an empty store.
pub(crate) fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, BuildError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(cause = %err, "skipping unreadable system root certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system root certificates loaded");
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots
                .add(cert)
                .map_err(|source| BuildError::CaFileCertificate {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
    }
    if roots.is_empty() {
        return Err(BuildError::NoRoots);
    }
    Ok(roots)
}

/// Every certificate of the PEM file at `path`; at least one.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| BuildError::CaFileUnreadable {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(BuildError::CaFileEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name)
    }

    #[test]
    fn a_ca_file_adds_its_certificates_to_the_system_roots() {
        let system = root_store(None).map(|roots| roots.len()).unwrap_or(0);
        let with_ca = root_store(Some(&testdata("ca.pem"))).expect("a usable CA file");
        assert_eq!(with_ca.len(), system + 1);
    }

    #[test]
    fn a_missing_ca_file_is_unreadable() {
        let err = root_store(Some(&testdata("missing.pem"))).expect_err("refused");
        assert!(
            matches!(&err, BuildError::CaFileUnreadable { path, .. } if path.ends_with("missing.pem")),
            "{err:?}"
        );
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let err = root_store(Some(&testdata("README.md"))).expect_err("refused");
        assert!(matches!(err, BuildError::CaFileEmpty { .. }), "{err:?}");
    }

    #[test]
    fn a_pem_block_that_is_not_a_certificate_is_refused() {
        let err = root_store(Some(&testdata("not-a-certificate.pem"))).expect_err("refused");
        assert!(
            matches!(err, BuildError::CaFileCertificate { .. }),
            "{err:?}"
        );
    }
}
