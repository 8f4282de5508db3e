//! TLS set-up: rustls with the `ring` provider, installed once per process.

/// Installs `ring` as the process-wide rustls provider. Safe to call often:
/// later calls find it installed and do nothing.
pub fn install_crypto_provider() {
    // An Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
