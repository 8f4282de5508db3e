//! `file_hash`: the md5, sha1 or sha256 digest of some content. Hashing runs
//! on the blocking pool so large contents never stall the async runtime.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{NoSettings, RetryPolicy, Task, TaskEnv, TaskError};
use crate::config::ConfigError;

pub struct FileHash;

/// Digest algorithms `file_hash` offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Md5,
    Sha1,
    #[default]
    Sha256,
}

impl Algorithm {
    fn hex_digest(self, bytes: &[u8]) -> String {
        match self {
            Self::Md5 => hex::encode(md5::Md5::digest(bytes)),
            Self::Sha1 => hex::encode(sha1::Sha1::digest(bytes)),
            Self::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
        }
    }
}

/// Parameters of `file_hash`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileHashParams {
    /// The content to hash, as text (hashed as its UTF-8 bytes).
    #[schema(example = "hello world")]
    pub content: String,
    /// Digest algorithm; `sha256` when omitted.
    #[serde(default)]
    pub algorithm: Algorithm,
}

/// Output of `file_hash`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileHashOutput {
    /// The digest, lower-case hex.
    #[schema(example = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")]
    pub digest: String,
    pub algorithm: Algorithm,
    /// Length of the hashed content in bytes (UTF-8).
    #[schema(example = 11)]
    pub size_bytes: u64,
}

impl Task for FileHash {
    const NAME: &'static str = "file_hash";
    const DESCRIPTION: &'static str = "Hashes `content` with `algorithm` (md5, sha1, sha256). \
         Output: `{\"digest\": hex, \"algorithm\": name, \"size_bytes\": n}`.";
    type Params = FileHashParams;
    type Output = FileHashOutput;
    const QUICK: bool = true;
    type Settings = NoSettings;

    fn build(_: NoSettings, _: &TaskEnv) -> Result<Self, ConfigError> {
        Ok(FileHash)
    }

    fn example() -> FileHashParams {
        FileHashParams {
            content: "hello world".into(),
            algorithm: Algorithm::Sha256,
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::FEW_QUICK
    }

    fn timeout(&self) -> Duration {
        // Contents are at most api.max_body_bytes: hashed in milliseconds.
        Duration::from_secs(10)
    }

    async fn run(&self, params: FileHashParams) -> Result<FileHashOutput, TaskError> {
        let algorithm = params.algorithm;
        let size_bytes = params.content.len() as u64;
        let digest =
            tokio::task::spawn_blocking(move || algorithm.hex_digest(params.content.as_bytes()))
                .await
                .map_err(|err| TaskError::fatal(format!("hashing did not finish: {err}")))?;
        Ok(FileHashOutput {
            digest,
            algorithm,
            size_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_vectors() {
        let abc = b"abc";
        assert_eq!(
            Algorithm::Md5.hex_digest(abc),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            Algorithm::Sha1.hex_digest(abc),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            Algorithm::Sha256.hex_digest(abc),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
