//! Where the bucket's access key comes from, in this order:
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
//!    `AWS_SESSION_TOKEN`), as every S3 tool reads them;
//! 2. the config file: `"s3-access-key-id"` and `"s3-secret-access-key"`;
//! 3. an AWS credentials file: `--s3-credentials FILE`, else
//!    `$AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`, in the
//!    profile `$AWS_PROFILE` or `default`.
//!
//! Never from the command line (other local users see it); never logged.

use super::s3::S3Credentials;
use std::path::{Path, PathBuf};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Finds the credentials, or says where they were looked for.
pub fn find(
    from_config: Option<(String, String)>,
    file: Option<&Path>,
) -> Result<S3Credentials, String> {
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(S3Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN"),
            source: "the environment (AWS_ACCESS_KEY_ID)".into(),
        });
    }
    if let Some((id, secret)) = from_config {
        return Ok(S3Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: None,
            source: "the config file".into(),
        });
    }
    let explicit = file.is_some();
    let path: Option<PathBuf> = file
        .map(Path::to_path_buf)
        .or_else(|| env("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from))
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws/credentials")));
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    if let Some(path) = &path {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                if let Some(c) = from_ini(&text, &profile) {
                    return Ok(S3Credentials {
                        source: format!("{} [{profile}]", path.display()),
                        ..c
                    });
                }
                return Err(format!(
                    "{} has no aws_access_key_id and aws_secret_access_key in [{profile}]",
                    path.display()
                ));
            }
            Err(e) if explicit || e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot read {}: {e}", path.display()))
            }
            Err(_) => {}
        }
    }
    Err(
        "the bucket needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         or s3-access-key-id and s3-secret-access-key in the config file, \
         or name an AWS credentials file with --s3-credentials"
            .into(),
    )
}

/// The keys of `[profile]` in an AWS credentials file.
fn from_ini(text: &str, profile: &str) -> Option<S3Credentials> {
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            inside = name == profile || name.strip_prefix("profile ") == Some(profile);
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(S3Credentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
        source: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_of_a_credentials_file() {
        let text = "# keys\n[default]\naws_access_key_id = AK1\naws_secret_access_key=S1\n\n\
                    [profile backup]\naws_access_key_id = AK2\naws_secret_access_key = S2\n\
                    aws_session_token = T2\n[half]\naws_access_key_id = AK3\n";
        let d = from_ini(text, "default").unwrap();
        assert_eq!(
            (d.access_key_id.as_str(), d.secret_access_key.as_str()),
            ("AK1", "S1")
        );
        let b = from_ini(text, "backup").unwrap();
        assert_eq!(b.session_token.as_deref(), Some("T2"));
        assert!(from_ini(text, "half").is_none());
        assert!(from_ini(text, "absent").is_none());
    }
}
