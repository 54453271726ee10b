//! The lake: S3 in AWS, a local directory on one machine. Keys are always `/`-separated and
//! relative to the lake root (`landing_zone/api/users/...`).
//!
//! Objects appear whole or not at all: S3 `PutObject` is atomic, and locally a file is written
//! under `.staging/` and renamed into place.

use std::path::{Path, PathBuf};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use crate::error::{aws_sdk_failure, Error, Result};

#[derive(Debug, Clone)]
pub enum Lake {
    Local {
        root: PathBuf,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
    },
}

/// What `head` tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub version: String,
    /// When the object was last written (unknown: now).
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// A parsed `LAKE_URI`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeUri {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl LakeUri {
    /// Accepts `s3://bucket[/prefix]`, `file:///abs/path` or a plain path.
    pub fn parse(uri: &str) -> Result<LakeUri> {
        let uri = uri.trim();
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Configuration(format!(
                    "LAKE_URI {uri:?} has no bucket"
                )));
            }
            Ok(LakeUri::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            })
        } else if let Some(path) = uri.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(Error::Configuration(format!(
                    "LAKE_URI {uri:?}: a file:// URI needs an absolute path (file:///...)"
                )));
            }
            Ok(LakeUri::Local(PathBuf::from(path)))
        } else if uri.is_empty() || uri.contains("://") {
            Err(Error::Configuration(format!(
                "LAKE_URI {uri:?}: expected s3://bucket/prefix, file:///path or a directory path"
            )))
        } else {
            Ok(LakeUri::Local(PathBuf::from(uri)))
        }
    }
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(Error::InvalidInput(format!("invalid lake key {key:?}")));
    }
    Ok(())
}

/// Maps SDK failures: throttling, 5xx, timeouts and dispatch failures are transient; the rest
/// (access denied, no such bucket) is a deployment problem.
fn s3_err<E: ProvideErrorMetadata + std::error::Error + 'static>(
    what: &str,
    e: SdkError<E>,
) -> Error {
    let (transient, detail) = aws_sdk_failure(&e, &["SlowDown", "RequestTimeout"]);
    let detail = format!("{what}: {detail}");
    if transient {
        Error::StorageUnavailable(detail)
    } else {
        Error::Configuration(detail)
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::StorageUnavailable(format!("{what} {}: {e}", path.display()))
}

/// Reads of local objects: the kernel copies them into a buffer that fits the CPU's cache.
const LOCAL_READ_BYTES: usize = 128 * 1024;

/// Where a local object keeps its content version: `"<xxh3-128 hex> <size> <mtime ns>"`.
const VERSION_XATTR: &str = "user.deftunes.version";

/// Size and content version of a local object: like S3's ETag of a single-part upload, a hash
/// of the content (rewriting identical bytes keeps the version, changed bytes change it).
/// xxh3-128, not MD5: S3 hands its ETag over for free, so the local stand-in must not cost a
/// second pass at MD5's speed (0.4 s for 200 MB measured).
///
/// Like S3, which computes the ETag as the object is written, the hash is kept with the file
/// (an extended attribute, set when the lake publishes it or first reads it) for as long as its
/// size and modification time are the ones hashed: hashing on every read cost the transform of
/// a 200 MB object 4% of its CPU and 60 ms before its first record. A file system without user
/// extended attributes hashes on every read, as before.
pub fn local_version(path: &Path) -> std::io::Result<ObjectMeta> {
    use std::io::Read;
    use xattr::FileExt;
    let mut f = std::fs::File::open(path)?;
    let stat = f.metadata()?;
    let modified = stat.modified().ok();
    let mtime_ns = modified
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let stamp = |version: &str| format!("{version} {} {mtime_ns}", stat.len());
    let last_modified = modified
        .map(chrono::DateTime::from)
        .unwrap_or_else(chrono::Utc::now);
    let cached = f.get_xattr(VERSION_XATTR).ok().flatten();
    if let Some(version) = cached.as_deref().and_then(|v| {
        let v = std::str::from_utf8(v).ok()?;
        let version = v.split(' ').next()?;
        (v == stamp(version)).then(|| version.to_string())
    }) {
        return Ok(ObjectMeta {
            size: stat.len(),
            version,
            last_modified,
        });
    }
    // Read into a buffer that stays in the CPU's cache: hashing 200 MB took 0.2 s through
    // tokio's file with 1 MB reads, and reading alone 30 ms with 128 KB reads against
    // 110-140 ms with 256 KB or more.
    let mut hasher = twox_hash::XxHash3_128::new();
    let mut buf = vec![0u8; LOCAL_READ_BYTES];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.write(&buf[..n]);
        size += n as u64;
    }
    let version = format!("{:032x}", hasher.finish_128());
    // Only a file read whole as stated is stamped; it is changed, not hashed, if it was written
    // meanwhile. A file system (or a read-only file) refusing the attribute just hashes again.
    if size == stat.len() && f.metadata().ok().and_then(|m| m.modified().ok()) == modified {
        let _ = f.set_xattr(VERSION_XATTR, stamp(&version).as_bytes());
    }
    Ok(ObjectMeta {
        size,
        version,
        last_modified,
    })
}

impl Lake {
    pub fn local(root: impl Into<PathBuf>) -> Lake {
        Lake::Local { root: root.into() }
    }

    /// Builds the lake named by `uri`; for S3 the client comes from the SDK's default chain,
    /// which honours `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` (moto, LocalStack).
    /// `force_path_style` is needed by most emulators.
    pub async fn from_uri(uri: &str, force_path_style: bool) -> Result<Lake> {
        match LakeUri::parse(uri)? {
            LakeUri::Local(root) => Ok(Lake::Local { root }),
            LakeUri::S3 { bucket, prefix } => {
                let shared = aws_config::load_from_env().await;
                let conf = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(force_path_style)
                    .build();
                Ok(Lake::S3 {
                    client: aws_sdk_s3::Client::from_conf(conf),
                    bucket,
                    prefix,
                })
            }
        }
    }

    fn s3_key(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}/{key}")
        }
    }

    /// A human-readable address of `key` (for logs and summaries).
    pub fn uri_of(&self, key: &str) -> String {
        match self {
            Lake::Local { root } => root.join(key).display().to_string(),
            Lake::S3 { bucket, prefix, .. } => {
                format!("s3://{bucket}/{}", Self::s3_key(prefix, key))
            }
        }
    }

    /// Publishes a local file under `key`, replacing what was there. Returns the bytes written.
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<u64> {
        // Boxed: the extract handlers' futures are deep already; one more layer of nesting
        // overflows the compiler's layout query depth.
        Box::pin(self.put_file_as(key, file, "application/x-ndjson")).await
    }

    /// [`Self::put_file`] with the object's content type (S3 serves it with that type).
    pub async fn put_file_as(&self, key: &str, file: &Path, content_type: &str) -> Result<u64> {
        check_key(key)?;
        let len = tokio::fs::metadata(file)
            .await
            .map_err(|e| io_err("cannot stat", file, e))?
            .len();
        match self {
            Lake::Local { root } => {
                let dest = root.join(key);
                let staging = root.join(".staging");
                let parent = dest.parent().unwrap_or(root);
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| io_err("cannot create", parent, e))?;
                tokio::fs::create_dir_all(&staging)
                    .await
                    .map_err(|e| io_err("cannot create", &staging, e))?;
                let tmp = staging.join(format!("{}.tmp", uuid::Uuid::new_v4()));
                tokio::fs::copy(file, &tmp)
                    .await
                    .map_err(|e| io_err("cannot copy to", &tmp, e))?;
                // Its version is stamped as it is written, as S3 computes the ETag on a PUT.
                let staged = tmp.clone();
                let stamped = tokio::task::spawn_blocking(move || local_version(&staged)).await;
                if let Err(e) = stamped.map_err(std::io::Error::other).and_then(|r| r) {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(io_err("cannot read", &tmp, e));
                }
                if let Err(e) = tokio::fs::rename(&tmp, &dest).await {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(io_err("cannot publish", &dest, e));
                }
            }
            Lake::S3 {
                client,
                bucket,
                prefix,
            } => {
                let body = ByteStream::from_path(file).await.map_err(|e| {
                    Error::StorageUnavailable(format!("cannot read {}: {e}", file.display()))
                })?;
                let s3key = Self::s3_key(prefix, key);
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&s3key)
                    .body(body)
                    .content_length(len as i64)
                    .content_type(content_type)
                    .send()
                    .await
                    .map_err(|e| s3_err(&format!("PutObject s3://{bucket}/{s3key}"), e))?;
            }
        }
        Ok(len)
    }

    /// Publishes bytes under `key` (small objects: reports, manifests).
    pub async fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<u64> {
        Box::pin(self.put_bytes_as(key, bytes, "application/x-ndjson")).await
    }

    /// [`Self::put_bytes`] with the object's content type (`text/html` opens in a browser).
    pub async fn put_bytes_as(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<u64> {
        let tmp = tempfile::NamedTempFile::new()
            .map_err(|e| Error::Configuration(format!("cannot create a temporary file: {e}")))?;
        tokio::fs::write(tmp.path(), bytes)
            .await
            .map_err(|e| io_err("cannot write", tmp.path(), e))?;
        self.put_file_as(key, tmp.path(), content_type).await
    }

    /// Whole object as bytes (small objects: reports, tests).
    pub async fn get_bytes(&self, key: &str) -> Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        self.open(key)
            .await?
            .read_to_end(&mut out)
            .await
            .map_err(|e| Error::StorageUnavailable(format!("reading {}: {e}", self.uri_of(key))))?;
        Ok(out)
    }

    /// The whole object, or `None` when there is none (small state objects: watermarks). On S3
    /// a missing key reads as 404 only with `s3:ListBucket` on its prefix (else 403, an error).
    pub async fn get_optional(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        match self {
            Lake::Local { root } => {
                let p = root.join(key);
                match tokio::fs::read(&p).await {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err("cannot read", &p, e)),
                }
            }
            Lake::S3 {
                client,
                bucket,
                prefix,
            } => {
                let s3key = Self::s3_key(prefix, key);
                let out = match client.get_object().bucket(bucket).key(&s3key).send().await {
                    Ok(out) => out,
                    Err(SdkError::ServiceError(se)) if se.raw().status().as_u16() == 404 => {
                        return Ok(None)
                    }
                    Err(e) => return Err(s3_err(&format!("GetObject s3://{bucket}/{s3key}"), e)),
                };
                let body = out.body.collect().await.map_err(|e| {
                    Error::StorageUnavailable(format!("reading s3://{bucket}/{s3key}: {e}"))
                })?;
                Ok(Some(body.into_bytes().to_vec()))
            }
        }
    }

    /// Size and content version of `key`: the S3 ETag, or locally an xxh3-128 hash of the content.
    pub async fn head(&self, key: &str) -> Result<ObjectMeta> {
        check_key(key)?;
        match self {
            Lake::Local { root } => {
                let p = root.join(key);
                let path = p.clone();
                let meta = tokio::task::spawn_blocking(move || local_version(&path))
                    .await
                    .map_err(|e| {
                        Error::StorageUnavailable(format!("hashing {}: {e}", p.display()))
                    })?;
                meta.map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        Error::InvalidInput(format!("no object {}", p.display()))
                    }
                    _ => io_err("cannot read", &p, e),
                })
            }
            Lake::S3 {
                client,
                bucket,
                prefix,
            } => {
                let s3key = Self::s3_key(prefix, key);
                let out = client.head_object().bucket(bucket).key(&s3key).send().await.map_err(|e| {
                    if matches!(&e, SdkError::ServiceError(se) if se.raw().status().as_u16() == 404) {
                        Error::InvalidInput(format!("no object s3://{bucket}/{s3key}"))
                    } else {
                        s3_err(&format!("HeadObject s3://{bucket}/{s3key}"), e)
                    }
                })?;
                // The ETag names the content (MD5 for single-part uploads): an identical rewrite
                // keeps it, where a versioned bucket would mint a new version id.
                let version = out
                    .e_tag()
                    .or(out.version_id().filter(|v| *v != "null"))
                    .map(|v| v.trim_matches('"').to_string())
                    .unwrap_or_default();
                let last_modified = out
                    .last_modified()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                    .unwrap_or_else(chrono::Utc::now);
                Ok(ObjectMeta {
                    size: out.content_length().unwrap_or_default().max(0) as u64,
                    version,
                    last_modified,
                })
            }
        }
    }

    /// A buffered stream of the object's bytes (memory stays bounded whatever its size).
    pub async fn open(&self, key: &str) -> Result<Box<dyn tokio::io::AsyncBufRead + Unpin + Send>> {
        self.open_version(key, None).await
    }

    /// [`Self::open`], and on S3 only if the object still has the content `version` (its ETag,
    /// from [`Self::head`]): what is read is then what is recorded as read. An object rewritten
    /// in between is a retryable `StorageUnavailable` (the retry sees the new version). Local
    /// objects are replaced by rename, so the opened file is one whole version either way.
    pub async fn open_version(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Box<dyn tokio::io::AsyncBufRead + Unpin + Send>> {
        check_key(key)?;
        match self {
            Lake::Local { root } => {
                let p = root.join(key);
                let f = tokio::fs::File::open(&p)
                    .await
                    .map_err(|e| io_err("cannot open", &p, e))?;
                Ok(Box::new(tokio::io::BufReader::with_capacity(
                    LOCAL_READ_BYTES,
                    f,
                )))
            }
            Lake::S3 {
                client,
                bucket,
                prefix,
            } => {
                let s3key = Self::s3_key(prefix, key);
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(&s3key)
                    .set_if_match(version.filter(|v| !v.is_empty()).map(|v| format!("\"{v}\"")))
                    .send()
                    .await
                    .map_err(|e| {
                        if matches!(&e, SdkError::ServiceError(se) if se.raw().status().as_u16() == 412) {
                            Error::StorageUnavailable(format!(
                                "s3://{bucket}/{s3key} changed since it was read (expected ETag {}); a retry reads the new content",
                                version.unwrap_or_default()
                            ))
                        } else {
                            s3_err(&format!("GetObject s3://{bucket}/{s3key}"), e)
                        }
                    })?;
                Ok(Box::new(tokio::io::BufReader::with_capacity(
                    1 << 20,
                    out.body.into_async_read(),
                )))
            }
        }
    }

    /// Keys starting with `prefix` (a key prefix, not necessarily a folder), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .list_modified(prefix)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// The lake key of a full address (`file:///...`, `s3://bucket/...`) inside this lake.
    pub fn key_of(&self, uri: &str) -> Option<String> {
        let rest = match self {
            Lake::Local { root } => {
                let path = uri.strip_prefix("file://").unwrap_or(uri);
                let root = std::path::absolute(root).ok()?;
                Path::new(path)
                    .strip_prefix(&root)
                    .ok()?
                    .to_string_lossy()
                    .replace('\\', "/")
            }
            Lake::S3 { bucket, prefix, .. } => {
                let in_bucket = uri.strip_prefix("s3://")?.strip_prefix(bucket.as_str())?;
                let in_bucket = in_bucket.strip_prefix('/')?;
                if prefix.is_empty() {
                    in_bucket.to_string()
                } else {
                    in_bucket
                        .strip_prefix(prefix.as_str())?
                        .strip_prefix('/')?
                        .to_string()
                }
            }
        };
        (!rest.is_empty()).then_some(rest)
    }

    /// Keys starting with `prefix`, sorted, with their last-modified time.
    pub async fn list_modified(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, std::time::SystemTime)>> {
        let mut keys = match self {
            Lake::Local { root } => {
                // Walk only the folder part of the prefix.
                let dir_part = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let start = root.join(dir_part);
                let mut out = Vec::new();
                let mut stack = vec![start];
                while let Some(dir) = stack.pop() {
                    let mut rd = match tokio::fs::read_dir(&dir).await {
                        Ok(rd) => rd,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_err("cannot list", &dir, e)),
                    };
                    while let Some(entry) = rd
                        .next_entry()
                        .await
                        .map_err(|e| io_err("cannot list", &dir, e))?
                    {
                        let path = entry.path();
                        let ft = entry
                            .file_type()
                            .await
                            .map_err(|e| io_err("cannot stat", &path, e))?;
                        let Ok(rel) = path.strip_prefix(root) else {
                            continue;
                        };
                        let rel = rel.to_string_lossy().replace('\\', "/");
                        if rel.starts_with(".staging") {
                            continue;
                        }
                        if ft.is_dir() {
                            stack.push(path);
                        } else if rel.starts_with(prefix) {
                            let modified = entry
                                .metadata()
                                .await
                                .and_then(|m| m.modified())
                                .map_err(|e| io_err("cannot stat", &path, e))?;
                            out.push((rel, modified));
                        }
                    }
                }
                out
            }
            Lake::S3 {
                client,
                bucket,
                prefix: root_prefix,
            } => {
                let full = Self::s3_key(root_prefix, prefix);
                let strip = if root_prefix.is_empty() {
                    0
                } else {
                    root_prefix.len() + 1
                };
                let mut out = Vec::new();
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(&full)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page
                        .map_err(|e| s3_err(&format!("ListObjectsV2 s3://{bucket}/{full}"), e))?;
                    for obj in page.contents() {
                        if let Some(k) = obj.key() {
                            // Unknown age: treated as new, so never deleted as an orphan.
                            let modified = obj
                                .last_modified()
                                .and_then(|t| std::time::SystemTime::try_from(*t).ok())
                                .unwrap_or_else(std::time::SystemTime::now);
                            out.push((k[strip.min(k.len())..].to_string(), modified));
                        }
                    }
                }
                out
            }
        };
        keys.sort();
        Ok(keys)
    }

    /// Deletes `key`; deleting a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        match self {
            Lake::Local { root } => {
                let p = root.join(key);
                match tokio::fs::remove_file(&p).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_err("cannot delete", &p, e)),
                }
            }
            Lake::S3 {
                client,
                bucket,
                prefix,
            } => {
                let s3key = Self::s3_key(prefix, key);
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(&s3key)
                    .send()
                    .await
                    .map_err(|e| s3_err(&format!("DeleteObject s3://{bucket}/{s3key}"), e))?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::put_object::PutObjectOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    #[test]
    fn lake_uris_parse() {
        assert_eq!(
            LakeUri::parse("s3://my-lake/dev/").unwrap(),
            LakeUri::S3 {
                bucket: "my-lake".into(),
                prefix: "dev".into()
            }
        );
        assert_eq!(
            LakeUri::parse("s3://my-lake").unwrap(),
            LakeUri::S3 {
                bucket: "my-lake".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            LakeUri::parse("file:///tmp/lake").unwrap(),
            LakeUri::Local("/tmp/lake".into())
        );
        assert_eq!(
            LakeUri::parse("./lake").unwrap(),
            LakeUri::Local("./lake".into())
        );
        for bad in ["s3://", "file://relative", "gs://b/p", ""] {
            let e = LakeUri::parse(bad).unwrap_err();
            assert_eq!(e.error_type(), "Configuration", "{bad}");
        }
    }

    #[test]
    fn keys_escaping_the_lake_are_refused() {
        for bad in ["", "/abs", "a/../b", "a//b", "./a"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        assert!(check_key("landing_zone/api/users/ingest_on=2020-01-01/x.jsonl").is_ok());
    }

    #[tokio::test]
    async fn local_put_list_get_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path());
        lake.put_bytes("a/b/one.jsonl", b"{}\n").await.unwrap();
        lake.put_bytes("a/b/two.jsonl", b"{}\n{}\n").await.unwrap();
        lake.put_bytes("a/c/three.jsonl", b"").await.unwrap();
        assert_eq!(
            lake.list("a/b/").await.unwrap(),
            ["a/b/one.jsonl", "a/b/two.jsonl"]
        );
        assert_eq!(lake.list("a/b/t").await.unwrap(), ["a/b/two.jsonl"]);
        assert_eq!(lake.list("a/").await.unwrap().len(), 3);
        assert!(lake.list("nothing/here/").await.unwrap().is_empty());
        assert_eq!(lake.get_bytes("a/b/two.jsonl").await.unwrap(), b"{}\n{}\n");
        lake.delete("a/b/one.jsonl").await.unwrap();
        lake.delete("a/b/one.jsonl").await.unwrap();
        assert_eq!(lake.list("a/b/").await.unwrap(), ["a/b/two.jsonl"]);
        // Nothing is left behind in the staging area.
        assert!(lake.list(".staging").await.unwrap().is_empty());
        let staging = std::fs::read_dir(dir.path().join(".staging"))
            .unwrap()
            .count();
        assert_eq!(staging, 0);
    }

    #[tokio::test]
    async fn local_versions_are_kept_with_the_file_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path());
        let path = dir.path().join("a/x.jsonl");
        let hash = |b: &[u8]| format!("{:032x}", twox_hash::XxHash3_128::oneshot(b));
        lake.put_bytes("a/x.jsonl", b"{}\n").await.unwrap();
        // Stamped when published: the content's hash, its size and modification time.
        let stamp = String::from_utf8(xattr::get(&path, VERSION_XATTR).unwrap().unwrap()).unwrap();
        assert!(
            stamp.starts_with(&format!("{} 3 ", hash(b"{}\n"))),
            "{stamp}"
        );
        let head = lake.head("a/x.jsonl").await.unwrap();
        assert_eq!((head.size, head.version), (3, hash(b"{}\n")));

        // The kept version is the one answered while the file is unchanged: not hashed again.
        let forged = stamp.replacen(&hash(b"{}\n"), &"f".repeat(32), 1);
        xattr::set(&path, VERSION_XATTR, forged.as_bytes()).unwrap();
        assert_eq!(
            lake.head("a/x.jsonl").await.unwrap().version,
            "f".repeat(32)
        );

        // Rewritten in place with as many bytes: a new modification time, hashed again.
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, b"[]\n").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(modified + std::time::Duration::from_secs(1))
            .unwrap();
        drop(f);
        assert_eq!(lake.head("a/x.jsonl").await.unwrap().version, hash(b"[]\n"));
        // Another size with the same time (a forged stamp of the old size): hashed again.
        xattr::set(&path, VERSION_XATTR, forged.as_bytes()).unwrap();
        let mut f = std::fs::File::options().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, b"{}\n").unwrap();
        f.set_modified(modified).unwrap();
        drop(f);
        let head = lake.head("a/x.jsonl").await.unwrap();
        assert_eq!((head.size, head.version), (6, hash(b"[]\n{}\n")));
        // A garbled stamp is not believed either.
        xattr::set(&path, VERSION_XATTR, b"\xff garbage").unwrap();
        assert_eq!(
            lake.head("a/x.jsonl").await.unwrap().version,
            hash(b"[]\n{}\n")
        );
        // Identical bytes published again keep the version, as S3's ETag does.
        lake.put_bytes("a/x.jsonl", b"[]\n{}\n").await.unwrap();
        assert_eq!(
            lake.head("a/x.jsonl").await.unwrap().version,
            hash(b"[]\n{}\n")
        );
    }

    fn s3_lake(client: aws_sdk_s3::Client) -> Lake {
        Lake::S3 {
            client,
            bucket: "lake".into(),
            prefix: "dev".into(),
        }
    }

    #[tokio::test]
    async fn s3_put_goes_under_the_prefix() {
        let put = mock!(aws_sdk_s3::Client::put_object)
            .match_requests(|r| {
                r.bucket() == Some("lake") && r.key() == Some("dev/landing_zone/x.jsonl")
            })
            .then_output(|| PutObjectOutput::builder().build());
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put]);
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"{}\n").unwrap();
        assert_eq!(
            s3_lake(client)
                .put_file("landing_zone/x.jsonl", f.path())
                .await
                .unwrap(),
            3
        );
        assert_eq!(put.num_calls(), 1);
    }

    #[tokio::test]
    async fn s3_objects_carry_their_content_type() {
        let put = mock!(aws_sdk_s3::Client::put_object)
            .match_requests(|r| {
                r.key() == Some("dev/reports/r/report.html")
                    && r.content_type() == Some("text/html; charset=utf-8")
            })
            .then_output(|| PutObjectOutput::builder().build());
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put]);
        s3_lake(client)
            .put_bytes_as("reports/r/report.html", b"<p>", "text/html; charset=utf-8")
            .await
            .unwrap();
        assert_eq!(put.num_calls(), 1);
    }

    #[tokio::test]
    async fn s3_errors_are_classified() {
        use aws_sdk_s3::operation::put_object::PutObjectError;
        use aws_smithy_types::error::ErrorMetadata;
        let denied = mock!(aws_sdk_s3::Client::put_object).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(403).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    "<Error><Code>AccessDenied</Code><Message>denied</Message></Error>",
                ),
            )
        });
        let client = mock_client!(aws_sdk_s3, [&denied]);
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = s3_lake(client)
            .put_file("k.jsonl", f.path())
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), "Configuration", "{e}");
        assert!(e.to_string().contains("AccessDenied"), "{e}");

        let slow = mock!(aws_sdk_s3::Client::put_object).then_error(|| {
            PutObjectError::generic(
                ErrorMetadata::builder()
                    .code("SlowDown")
                    .message("reduce")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_s3, [&slow]);
        let e = s3_lake(client)
            .put_file("k.jsonl", f.path())
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), "StorageUnavailable", "{e}");
        assert!(e.to_string().contains("SlowDown"), "{e}");
    }

    #[tokio::test]
    async fn s3_read_is_pinned_to_the_version_seen() {
        let pinned = mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|r| r.if_match() == Some("\"abc\""))
            .then_http_response(|| {
                aws_smithy_runtime_api::http::Response::new(
                    aws_smithy_runtime_api::http::StatusCode::try_from(412).unwrap(),
                    aws_smithy_types::body::SdkBody::from(
                        "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>",
                    ),
                )
            });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&pinned]);
        let e = match s3_lake(client)
            .open_version("landing_zone/x.jsonl", Some("abc"))
            .await
        {
            Ok(_) => panic!("a rewritten object must not be read under the old version"),
            Err(e) => e,
        };
        assert_eq!(pinned.num_calls(), 1);
        assert_eq!(e.error_type(), "StorageUnavailable", "{e}");
        assert!(e.to_string().contains("changed since it was read"), "{e}");
    }
}
