//! `/v1/files?path=`: list a directory or download a file; upload a file.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mote_api::api::{DirListing, Done, FileEntry, FilesQuery, MAX_UPLOAD_BYTES};

use crate::error::{ApiError, QueryArgs};

fn absolute(path: &str) -> Result<PathBuf, ApiError> {
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Err(ApiError::BadRequest(format!(
            "{path:?} is not an absolute path"
        )));
    }
    Ok(p)
}

fn io<'a>(op: &'static str, path: &'a str) -> impl FnOnce(std::io::Error) -> ApiError + 'a {
    move |source| ApiError::Io {
        op,
        path: path.to_string(),
        source,
    }
}

pub async fn get(QueryArgs(q): QueryArgs<FilesQuery>) -> Result<Response, ApiError> {
    let p = absolute(&q.path)?;
    let meta = tokio::fs::metadata(&p).await.map_err(io("stat", &q.path))?;
    if meta.is_file() {
        // Streamed, so a large file costs a buffer, not its size in memory
        // (/proc files say 0 bytes and stream what they hold).
        let file = tokio::fs::File::open(&p)
            .await
            .map_err(io("read", &q.path))?;
        let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 << 10));
        return Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response());
    }
    if !meta.is_dir() {
        // A device or a pipe never ends (/dev/zero) or blocks the reader.
        return Err(ApiError::BadRequest(format!(
            "{:?} is not a regular file or a directory (a device, pipe or socket); only files \
             are downloaded",
            q.path
        )));
    }
    let mut rd = tokio::fs::read_dir(&p).await.map_err(io("list", &q.path))?;
    let mut entries = Vec::new();
    while let Some(e) = rd.next_entry().await.map_err(io("list", &q.path))? {
        let Ok(m) = tokio::fs::symlink_metadata(e.path()).await else {
            continue;
        };
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else {
            "other"
        };
        entries.push(FileEntry {
            name: e.file_name().to_string_lossy().into_owned(),
            kind: kind.into(),
            size: m.len(),
            mode: m.permissions().mode() & 0o7777,
            modified_ms: m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(DirListing {
        path: q.path,
        entries,
    })
    .into_response())
}

pub async fn put(QueryArgs(q): QueryArgs<FilesQuery>, body: Body) -> Result<Json<Done>, ApiError> {
    let p = absolute(&q.path)?;
    if q.path.ends_with('/') || tokio::fs::metadata(&p).await.is_ok_and(|m| m.is_dir()) {
        return Err(ApiError::BadRequest(format!(
            "{:?} is a directory; name the file to write, such as {:?}",
            q.path,
            p.join("NAME")
        )));
    }
    let data = axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge {
            limit: MAX_UPLOAD_BYTES,
        })?;
    let name = p
        .file_name()
        .ok_or_else(|| ApiError::BadRequest(format!("{:?} names no file", q.path)))?;
    let tmp = p.with_file_name(format!(".{}.upload", name.to_string_lossy()));
    tokio::fs::write(&tmp, &data)
        .await
        .map_err(io("write", &q.path))?;
    if let Err(e) = tokio::fs::rename(&tmp, &p).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io("write", &q.path)(e));
    }
    Ok(Json(Done {
        message: format!("wrote {} bytes to {}", data.len(), q.path),
    }))
}
