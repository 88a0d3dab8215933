//! HTTP agents for the server: plain `http://`, or `https://` verified
//! against the usual public roots plus, with `--ca FILE`, a private CA or a
//! self-signed certificate (PEM).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// An agent with the given timeouts that trusts the public roots and the
/// certificates in `ca`, if given.
pub fn agent(ca: Option<&Path>, connect: Duration, io: Duration) -> Result<ureq::Agent, String> {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout_read(io)
        .timeout_write(io)
        .user_agent(concat!("nimbus-client/", env!("CARGO_PKG_VERSION")));
    // A new connection for every request: the benchmark's reference for
    // what keeping connections alive saves (and a way to rule it out when
    // a proxy in between mishandles kept-alive connections).
    if std::env::var_os("NIMBUS_NO_KEEPALIVE").is_some_and(|v| v == "1") {
        builder = builder.max_idle_connections(0);
    }
    if let Some(ca) = ca {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("cannot read the CA file {}: {e}", ca.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the CA file {} is not PEM certificates: {e}", ca.display()))?;
        if certs.is_empty() {
            return Err(format!("the CA file {} holds no certificate", ca.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                format!(
                    "the CA file {} has a certificate rustls refuses: {e}",
                    ca.display()
                )
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        builder = builder.tls_config(Arc::new(config));
    }
    Ok(builder.build())
}

/// True when a transport error is a certificate the client does not trust.
pub fn is_untrusted_certificate(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("certificate") || m.contains("unknownissuer")
}

/// What to tell the user about an untrusted certificate.
pub fn untrusted_advice(detail: &str) -> String {
    format!(
        "the server's TLS certificate is not trusted ({detail}); if the server uses a private CA \
         or a self-signed certificate, pass it with --ca FILE"
    )
}
