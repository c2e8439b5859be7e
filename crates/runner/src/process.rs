//! Runs one step's process: a cleared environment built by the caller, stdout and stderr
//! read line by line (logging commands may come on either), and cancellation as the agent
//! does it: SIGINT, then SIGTERM, then kill.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How many times SIGINT/SIGTERM reached azp-local.
static CANCEL_SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// The agent's grace periods: SIGINT, 7.5 s, SIGTERM, 2.5 s, kill.
const SIGINT_GRACE: Duration = Duration::from_millis(7500);
const SIGTERM_GRACE: Duration = Duration::from_millis(2500);

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    CANCEL_SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// Makes Ctrl-C and SIGTERM cancel the run instead of killing azp-local.
pub fn install_cancel_handler() {
    #[cfg(unix)]
    // SAFETY: the handler only touches an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether the run was cancelled (a signal reached azp-local).
pub fn cancel_requested() -> bool {
    CANCEL_SIGNALS.load(Ordering::SeqCst) > 0
}

pub struct Spawn {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub timed_out: bool,
    pub canceled: bool,
}

impl Ended {
    pub fn ok(&self) -> bool {
        self.code == Some(0) && !self.timed_out && !self.canceled
    }
}

fn read_lines(stream: impl Read, which: Stream, tx: mpsc::Sender<Option<(Stream, String)>>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_owned();
                if tx.send(Some((which, line))).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(None);
}

#[cfg(unix)]
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we spawned; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

#[cfg(unix)]
fn kill_group(pid: u32) {
    // SAFETY: as above; the child leads its own process group.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
}

/// Runs the process to its end, handing every output line to `on_line`.
pub fn run(spawn: &Spawn, on_line: &mut dyn FnMut(Stream, &str)) -> std::io::Result<Ended> {
    let mut command = Command::new(&spawn.program);
    command
        .args(&spawn.args)
        .current_dir(&spawn.cwd)
        .env_clear()
        .envs(spawn.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        // Its own process group: a terminal's Ctrl-C reaches azp-local only, which forwards
        // it the agent's way, and the final kill takes the whole tree.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn()?;
    let (tx, rx) = mpsc::channel();
    let mut open = 0;
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        open += 1;
        std::thread::spawn(move || read_lines(out, Stream::Stdout, tx));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        open += 1;
        std::thread::spawn(move || read_lines(err, Stream::Stderr, tx));
    }
    drop(tx);

    let started = Instant::now();
    let deadline = spawn.timeout.filter(|t| !t.is_zero()).map(|t| started + t);
    let signals_at_start = CANCEL_SIGNALS.load(Ordering::SeqCst);
    let mut timed_out = false;
    let mut canceled = false;
    // When the stop sequence began, and how far it got (1 SIGINT, 2 SIGTERM, 3 kill).
    let mut stopping: Option<(Instant, u8)> = None;
    let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Some((stream, line))) => on_line(stream, &line),
            Ok(None) => open -= 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => open = 0,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if exited.is_none() {
            if let Some(status) = child.try_wait()? {
                exited = Some((status, Instant::now()));
            }
        }
        if let Some((_, at)) = exited {
            // A background process may hold the pipes open: stop reading shortly after exit.
            if open == 0 || at.elapsed() > Duration::from_secs(1) {
                break;
            }
            continue;
        }
        let signals = CANCEL_SIGNALS.load(Ordering::SeqCst);
        if signals > signals_at_start && !canceled {
            canceled = true;
        }
        if !timed_out && deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
        }
        if canceled || timed_out {
            // A second Ctrl-C means now.
            let hurry = signals > signals_at_start + 1;
            match stopping {
                None => {
                    #[cfg(unix)]
                    signal(child.id(), libc::SIGINT);
                    #[cfg(not(unix))]
                    let _ = child.kill();
                    stopping = Some((Instant::now(), 1));
                }
                Some((at, 1)) if hurry || at.elapsed() >= SIGINT_GRACE => {
                    #[cfg(unix)]
                    signal(child.id(), libc::SIGTERM);
                    stopping = Some((Instant::now(), 2));
                }
                Some((at, 2)) if hurry || at.elapsed() >= SIGTERM_GRACE => {
                    #[cfg(unix)]
                    kill_group(child.id());
                    let _ = child.kill();
                    stopping = Some((Instant::now(), 3));
                }
                _ => {}
            }
        }
    }
    let status = match exited {
        Some((status, _)) => status,
        None => child.wait()?,
    };
    // Leave no stragglers of a stopped step behind.
    #[cfg(unix)]
    if stopping.is_some() {
        kill_group(child.id());
    }
    Ok(Ended {
        code: status.code(),
        timed_out,
        canceled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash(script: &str, timeout: Option<Duration>) -> (Ended, Vec<(Stream, String)>) {
        let spawn = Spawn {
            program: "bash".into(),
            args: vec!["-c".into(), script.into()],
            cwd: std::env::temp_dir(),
            env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
            timeout,
        };
        let mut lines = Vec::new();
        let ended = run(&spawn, &mut |s, l| lines.push((s, l.to_owned()))).unwrap();
        (ended, lines)
    }

    #[test]
    fn reads_both_streams_and_the_exit_code() {
        let (ended, lines) = bash("echo out; echo err >&2; exit 3", None);
        assert_eq!(ended.code, Some(3));
        assert!(lines.contains(&(Stream::Stdout, "out".into())));
        assert!(lines.contains(&(Stream::Stderr, "err".into())));
    }

    #[test]
    fn timeout_sends_sigint_first() {
        let started = Instant::now();
        let (ended, lines) = bash(
            "trap 'echo got SIGINT; exit 7' INT; echo ready; while true; do sleep 0.05; done",
            // Long enough for bash to install its trap on a loaded machine (at 300 ms a busy
            // CI run once sent SIGINT first and bash died of it instead of trapping it).
            Some(Duration::from_millis(1500)),
        );
        assert!(ended.timed_out);
        assert_eq!(ended.code, Some(7));
        assert!(lines.iter().any(|(_, l)| l == "got SIGINT"), "{lines:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
