//! Built-in tools a host node may offer, each opt-in: a filesystem confined to one directory,
//! and a shell tool limited to an allow-list of programs.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smol::future::FutureExt;
use smol::io::AsyncReadExt;
use toolwire_core::ErrorCode;
use toolwire_core::frame::Annotations;
use toolwire_smol::node::{Tool, ToolError};

/// Largest file `fs_read` returns, and largest content `fs_write` accepts.
pub const MAX_FILE: usize = 1 << 20;
/// Output kept from each of a command's stdout and stderr.
pub const MAX_OUTPUT: usize = 16 * 1024;

/// Resolves `rel` inside `root` (already canonical). Absolute paths, `..` and symlinks that
/// lead outside are refused. For a path that does not exist yet (a file to write), its parent
/// must exist inside the root.
pub fn confine(root: &Path, rel: &str) -> Result<PathBuf, ToolError> {
    let denied =
        |why: &str| ToolError::new(ErrorCode::Unauthorized, format!("path `{rel}`: {why}"));
    let p = Path::new(rel);
    if p.is_absolute() {
        return Err(denied("absolute paths are not allowed"));
    }
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(denied("`..` and prefixes are not allowed")),
        }
    }
    let joined = root.join(p);
    let resolved = match joined.canonicalize() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = joined.parent().ok_or_else(|| denied("no parent"))?;
            let name = joined.file_name().ok_or_else(|| denied("no file name"))?;
            let parent = parent.canonicalize().map_err(|e| {
                ToolError::new(ErrorCode::InvalidArguments, format!("path `{rel}`: {e}"))
            })?;
            parent.join(name)
        }
        Err(e) => {
            return Err(ToolError::new(
                ErrorCode::InvalidArguments,
                format!("path `{rel}`: {e}"),
            ));
        }
    };
    if !resolved.starts_with(root) {
        return Err(denied("it leads outside the root directory"));
    }
    Ok(resolved)
}

#[derive(Deserialize, JsonSchema)]
struct PathArg {
    /// Path relative to the root directory.
    path: String,
}

#[derive(Deserialize, JsonSchema)]
struct WriteArgs {
    /// Path relative to the root directory.
    path: String,
    /// UTF-8 text to write (replaces the file).
    content: String,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    dir: bool,
    size: u64,
}

fn io_err(e: io::Error) -> ToolError {
    let code = match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::InvalidData => ErrorCode::InvalidArguments,
        io::ErrorKind::PermissionDenied => ErrorCode::Unauthorized,
        _ => ErrorCode::ToolFailed,
    };
    ToolError::new(code, e.to_string())
}

/// `fs_read`, `fs_write` and `fs_list` confined to `root`.
pub fn fs_tools(root: &Path) -> io::Result<Vec<Tool>> {
    let root = root.canonicalize()?;
    if !root.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    let (r1, r2, r3) = (root.clone(), root.clone(), root);
    let read = Tool::typed(
        "fs_read",
        "Read a UTF-8 text file (at most 1 MiB).",
        move |_, a: PathArg| {
            let root = r1.clone();
            async move {
                let p = confine(&root, &a.path)?;
                let meta = smol::fs::metadata(&p).await.map_err(io_err)?;
                if meta.len() > MAX_FILE as u64 {
                    return Err(ToolError::new(
                        ErrorCode::FrameTooLarge,
                        format!("file is {} bytes; the limit is {MAX_FILE}", meta.len()),
                    ));
                }
                smol::fs::read_to_string(&p).await.map_err(io_err)
            }
        },
    )
    .annotations(Annotations {
        read_only: true,
        destructive: false,
        idempotent: true,
    });
    let write = Tool::typed(
        "fs_write",
        "Write a UTF-8 text file, replacing it.",
        move |_, a: WriteArgs| {
            let root = r2.clone();
            async move {
                if a.content.len() > MAX_FILE {
                    return Err(ToolError::new(
                        ErrorCode::InvalidArguments,
                        "content over 1 MiB",
                    ));
                }
                let p = confine(&root, &a.path)?;
                if smol::fs::symlink_metadata(&p)
                    .await
                    .is_ok_and(|m| m.file_type().is_symlink())
                {
                    return Err(ToolError::new(
                        ErrorCode::Unauthorized,
                        "refusing to write through a symlink",
                    ));
                }
                smol::fs::write(&p, a.content.as_bytes())
                    .await
                    .map_err(io_err)?;
                Ok(a.content.len())
            }
        },
    )
    .annotations(Annotations {
        read_only: false,
        destructive: true,
        idempotent: true,
    });
    let list = Tool::typed("fs_list", "List a directory.", move |_, a: PathArg| {
        let root = r3.clone();
        async move {
            let p = confine(&root, &a.path)?;
            let mut out = vec![];
            let mut rd = smol::fs::read_dir(&p).await.map_err(io_err)?;
            use smol::stream::StreamExt;
            while let Some(e) = rd.next().await {
                let e = e.map_err(io_err)?;
                let m = e.metadata().await.map_err(io_err)?;
                out.push(Entry {
                    name: e.file_name().to_string_lossy().into_owned(),
                    dir: m.is_dir(),
                    size: m.len(),
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        }
    })
    .annotations(Annotations {
        read_only: true,
        destructive: false,
        idempotent: true,
    });
    Ok(vec![read, write, list])
}

#[derive(Deserialize, JsonSchema)]
struct ShellArgs {
    /// Program to run (must be on the node's allow-list).
    program: String,
    /// Arguments, passed as they are (no shell).
    #[serde(default)]
    args: Vec<String>,
    /// Time limit in milliseconds (default 10 000, at most 60 000).
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct ShellResult {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    truncated: bool,
}

async fn read_capped(r: Option<impl smol::io::AsyncRead + Unpin>) -> (Vec<u8>, bool) {
    let Some(mut r) = r else {
        return (vec![], false);
    };
    let mut buf = vec![];
    let mut chunk = [0u8; 8192];
    let mut truncated = false;
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
                truncated |= n > room; // keep draining so the child never blocks on a full pipe
            }
        }
    }
    (buf, truncated)
}

/// `shell_run`: runs one of `allow` (by program name) with arguments, no shell, with a timeout
/// (the process is killed) and output capped at 16 KiB per stream.
pub fn shell_tool(allow: Vec<String>) -> Tool {
    let description = format!(
        "Run one of these programs with arguments (no shell): {}.",
        allow.join(", ")
    );
    Tool::typed("shell_run", &description, move |_, a: ShellArgs| {
        let allow = allow.clone();
        async move {
            if !allow.contains(&a.program) {
                return Err(ToolError::new(
                    ErrorCode::Unauthorized,
                    format!("`{}` is not on this node's allow-list", a.program),
                ));
            }
            let timeout = Duration::from_millis(a.timeout_ms.unwrap_or(10_000).min(60_000));
            let mut child = smol::process::Command::new(&a.program)
                .args(&a.args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(io_err)?;
            let (out, err) = (child.stdout.take(), child.stderr.take());
            let run = async {
                let ((stdout, t1), (stderr, t2)) =
                    smol::future::zip(read_capped(out), read_capped(err)).await;
                let status = child.status().await.map_err(io_err)?;
                Ok(ShellResult {
                    status: status.code(),
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                    truncated: t1 || t2,
                })
            };
            run.or(async {
                smol::Timer::after(timeout).await;
                Err(ToolError::new(
                    ErrorCode::Timeout,
                    format!("`{}` ran longer than {timeout:?} and was killed", a.program),
                ))
            })
            .await
        }
    })
    .annotations(Annotations {
        read_only: false,
        destructive: true,
        idempotent: false,
    })
}
