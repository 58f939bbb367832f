//! Built-in tools a host node may offer, each opt-in: a filesystem confined to one directory,
//! and a shell tool limited to an allow-list of programs, run in a sandbox of rlimits.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
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

/// The sandbox `shell_run` puts each program in (see [`shell_tool_with`]). The four limits are
/// rlimits set by util-linux's `prlimit`, which must be on the node's `PATH` with `setpriv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellLimits {
    /// CPU time in seconds (`RLIMIT_CPU`): SIGXCPU at this many, SIGKILL one second later.
    pub cpu_seconds: u64,
    /// Address space in bytes (`RLIMIT_AS`): allocations past it fail.
    pub address_space: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Processes (`RLIMIT_NPROC`). The kernel counts every process of the user the program
    /// runs as, not only this run's: as root the node runs programs as [`uid`](Self::uid), so
    /// the count is the sandboxes' own (shared by concurrent runs); as any other user it
    /// includes that user's other processes too.
    pub processes: u64,
    /// Names of the node's environment variables the program gets (values copied at each
    /// call; a name the node does not have is left out). The environment is otherwise empty,
    /// `PATH` included.
    pub env: Vec<String>,
    /// User id the program runs as when the node runs as root (otherwise it keeps the node's).
    pub uid: u32,
    /// Group id the program runs as when the node runs as root; supplementary groups are dropped.
    pub gid: u32,
}

impl Default for ShellLimits {
    /// 10 CPU seconds, 1 GiB of address space, 64 open files, 64 processes, no environment,
    /// and `nobody`/`nogroup` (65534) for a node that runs as root.
    fn default() -> Self {
        ShellLimits {
            cpu_seconds: 10,
            address_space: 1 << 30,
            open_files: 64,
            processes: 64,
            env: vec![],
            uid: 65534,
            gid: 65534,
        }
    }
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
    limits: AppliedLimits,
}

/// The limits a run had, in its result, so a caller can tell why a program failed.
#[derive(Serialize, Clone, Copy)]
struct AppliedLimits {
    cpu_seconds: u64,
    address_space: u64,
    open_files: u64,
    processes: u64,
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

/// `name` on the node's `PATH` (absolute entries only), or `name` itself if it has a `/`.
fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| executable(p))
}

/// Kills the child's process group (SIGKILL) once, when told to or when dropped: at the end of
/// a run, on timeout, or when the call is cancelled and its future dropped. Holds the group id
/// (the child's pid), 0 once used.
struct GroupKill(AtomicI32);

impl GroupKill {
    fn kill(&self) {
        // `from_raw` refuses 0; the id is never 1 (init) either, as it is our child's pid.
        if let Some(pgid) = rustix::process::Pid::from_raw(self.0.swap(0, Ordering::Relaxed)) {
            // ESRCH (the group is already gone) is the usual case.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal_name(sig: i32) -> String {
    use rustix::process::Signal as S;
    [
        (S::HUP, "SIGHUP"),
        (S::INT, "SIGINT"),
        (S::QUIT, "SIGQUIT"),
        (S::ILL, "SIGILL"),
        (S::TRAP, "SIGTRAP"),
        (S::ABORT, "SIGABRT"),
        (S::BUS, "SIGBUS"),
        (S::FPE, "SIGFPE"),
        (S::KILL, "SIGKILL"),
        (S::USR1, "SIGUSR1"),
        (S::SEGV, "SIGSEGV"),
        (S::USR2, "SIGUSR2"),
        (S::PIPE, "SIGPIPE"),
        (S::ALARM, "SIGALRM"),
        (S::TERM, "SIGTERM"),
        (S::XCPU, "SIGXCPU"),
        (S::XFSZ, "SIGXFSZ"),
        (S::SYS, "SIGSYS"),
    ]
    .iter()
    .find(|(s, _)| s.as_raw() == sig)
    .map_or_else(|| format!("signal {sig}"), |(_, n)| (*n).to_string())
}

/// The tool error for a program killed by signal `sig` (not by our timeout), naming the limit
/// the signal usually means.
fn killed(program: &str, sig: i32, l: &AppliedLimits) -> ToolError {
    use rustix::process::Signal as S;
    let name = signal_name(sig);
    let why = if sig == S::XCPU.as_raw() {
        format!(": it exceeded its CPU time limit ({} s)", l.cpu_seconds)
    } else if sig == S::KILL.as_raw() {
        format!(
            ": it exceeded its CPU time limit ({} s; SIGKILL comes at {} s), or something else \
             killed it (such as the OOM killer)",
            l.cpu_seconds,
            l.cpu_seconds.saturating_add(1)
        )
    } else if [S::SEGV, S::ABORT, S::BUS]
        .iter()
        .any(|s| s.as_raw() == sig)
    {
        format!(
            " (often an allocation failing under the address-space limit, {} bytes)",
            l.address_space
        )
    } else {
        String::new()
    };
    ToolError::new(
        ErrorCode::ToolFailed,
        format!("`{program}` was killed by {name}{why}"),
    )
}

/// `shell_run` with the default [`ShellLimits`]: see [`shell_tool_with`].
pub fn shell_tool(allow: Vec<String>) -> Tool {
    shell_tool_with(allow, ShellLimits::default())
}

/// `shell_run`: runs one of `allow` with arguments, no shell, with a timeout and output capped
/// at 16 KiB per stream, in a sandbox. A name without `/` is looked up on the node's `PATH`
/// (not the program's, which is unset unless passed), and the program runs from that absolute
/// path: as root, it must be executable by [`ShellLimits::uid`] (not under `/root`, say).
/// The sandbox:
///
/// - the rlimits of `limits` (and no core dumps), set by `prlimit`;
/// - an environment holding only the variables `limits.env` names;
/// - when the node runs as root, `limits.uid`/`limits.gid` and no supplementary groups, by
///   `setpriv`, which also sets `no_new_privs` (setuid programs gain nothing) in every case;
/// - a process group of its own, killed (SIGKILL) when the program exits, times out or the call
///   is cancelled, so its background children do not outlive the call. A process that leaves
///   the group (`setsid`, `setpgid`) escapes that kill; the processes limit still bounds it.
///
/// A program killed by a signal is a [`ErrorCode::ToolFailed`] error naming the signal and the
/// limit it usually means; the timeout is [`ErrorCode::Timeout`]; any exit status is a result
/// (`status`, `stdout`, `stderr`, `truncated`, and the `limits` that applied).
pub fn shell_tool_with(allow: Vec<String>, limits: ShellLimits) -> Tool {
    let applied = AppliedLimits {
        cpu_seconds: limits.cpu_seconds,
        address_space: limits.address_space,
        open_files: limits.open_files,
        processes: limits.processes,
    };
    let passed = if limits.env.is_empty() {
        "none".to_string()
    } else {
        limits.env.join(", ")
    };
    let description = format!(
        "Run one of these programs with arguments (no shell): {}. Each run is limited to {} s \
         of CPU time, {} bytes of address space, {} open files and {} processes; environment \
         variables: {passed}.",
        allow.join(", "),
        applied.cpu_seconds,
        applied.address_space,
        applied.open_files,
        applied.processes,
    );
    let run_as = rustix::process::geteuid()
        .is_root()
        .then_some((limits.uid, limits.gid));
    let env = limits.env;
    Tool::typed("shell_run", &description, move |_, a: ShellArgs| {
        let allow = allow.clone();
        let env = env.clone();
        async move {
            if !allow.contains(&a.program) {
                return Err(ToolError::new(
                    ErrorCode::Unauthorized,
                    format!("`{}` is not on this node's allow-list", a.program),
                ));
            }
            let program = find_program(&a.program).ok_or_else(|| {
                ToolError::new(
                    ErrorCode::InvalidArguments,
                    format!("`{}` is not on the node's PATH", a.program),
                )
            })?;
            let (Some(prlimit), Some(setpriv)) = (find_program("prlimit"), find_program("setpriv"))
            else {
                return Err(ToolError::new(
                    ErrorCode::ToolFailed,
                    "the shell sandbox needs util-linux's `prlimit` and `setpriv` on the node's PATH",
                ));
            };
            let l = applied;
            let mut cmd = std::process::Command::new(prlimit);
            cmd.arg(format!("--cpu={}:{}", l.cpu_seconds, l.cpu_seconds.saturating_add(1)))
                .arg(format!("--as={}", l.address_space))
                .arg(format!("--nofile={}", l.open_files))
                .arg(format!("--nproc={}", l.processes))
                .arg("--core=0")
                .arg("--")
                .arg(setpriv)
                .arg("--no-new-privs");
            if let Some((uid, gid)) = run_as {
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups");
            }
            cmd.arg("--").arg(program).args(&a.args).env_clear();
            for name in &env {
                if let Some(v) = std::env::var_os(name) {
                    cmd.env(name, v);
                }
            }
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let timeout = Duration::from_millis(a.timeout_ms.unwrap_or(10_000).min(60_000));
            // Standard streams are set here: `spawn` would make unset ones inherit ours.
            let mut child = smol::process::Command::from(cmd)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(io_err)?;
            // The child leads its group: its pid is the group id.
            let group = GroupKill(AtomicI32::new(i32::try_from(child.id()).unwrap_or(0)));
            let (out, err) = (child.stdout.take(), child.stderr.take());
            let run = async {
                let status = async {
                    let s = child.status().await;
                    // What the program left running dies now, and its pipes close.
                    group.kill();
                    s
                };
                let (((stdout, t1), (stderr, t2)), status) = smol::future::zip(
                    smol::future::zip(read_capped(out), read_capped(err)),
                    status,
                )
                .await;
                let status = status.map_err(io_err)?;
                if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status) {
                    return Err(killed(&a.program, sig, &l));
                }
                Ok(ShellResult {
                    status: status.code(),
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                    truncated: t1 || t2,
                    limits: l,
                })
            };
            run.or(async {
                smol::Timer::after(timeout).await;
                group.kill();
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
