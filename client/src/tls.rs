//! HTTP agents for the server: plain `http://`, or `https://` verified
//! against the usual public roots plus, with `--ca FILE`, a private CA or a
//! self-signed certificate (PEM).

use crate::ClientError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// An agent with the given timeouts that trusts the public roots and the
/// certificates in `ca`, if given.
pub fn agent(
    ca: Option<&Path>,
    connect: Duration,
    io: Duration,
) -> Result<ureq::Agent, ClientError> {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout_read(io)
        .timeout_write(io)
        .user_agent(concat!("nimbus-client/", env!("NIMBUS_CLIENT_VERSION")));
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
            .map_err(|e| {
                ClientError::Local(format!("cannot read the CA file {}: {e}", ca.display()))
            })?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                ClientError::Usage(format!(
                    "the CA file {} is not PEM certificates: {e}",
                    ca.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(ClientError::Usage(format!(
                "the CA file {} holds no certificate",
                ca.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                ClientError::Usage(format!(
                    "the CA file {} has a certificate rustls refuses: {e}",
                    ca.display()
                ))
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Setup(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        builder = builder.tls_config(Arc::new(config));
    }
    Ok(builder.build())
}

/// True when a transport error is a TLS certificate the client does not
/// trust: rustls's own error, found in the error's chain of sources (ureq
/// wraps it in an `io::Error`), matched by kind, never by message text.
pub fn is_untrusted(t: &ureq::Transport) -> bool {
    use std::error::Error;
    let mut next: Option<&(dyn Error + 'static)> = t.source();
    while let Some(e) = next {
        let rustls_error = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(r) = rustls_error {
            return matches!(
                r,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            );
        }
        next = e.source();
    }
    false
}

/// What to tell the user about an untrusted certificate (`detail`: the
/// TLS library's words).
pub fn untrusted_advice(detail: &str) -> String {
    format!(
        "the server's TLS certificate is not trusted ({detail}); if the server uses a private CA \
         or a self-signed certificate, pass it with --ca FILE"
    )
}
