//! The no-root sandbox: inside a fresh user + network namespace a process may bind ports 110
//! and 25 and capture its own loopback — as root and as user `nobody`.
//!
//! Entering a namespace changes the whole process, so every check runs in a child process:
//! - `sandboxed_command` re-executes this test binary (filtered to
//!   `capture_sandbox::sandbox_child`), whose child enters the sandbox between fork and exec;
//! - `enter_sandbox` needs a single-threaded process, which a test harness never is; so this
//!   binary has a start-up hook (run from `.init_array`, before `main` and before any thread)
//!   that, when an environment variable asks for it, enters the sandbox, does the same work,
//!   and exits — the way mailwire's own `main` is meant to call it.
//!
//! The `nobody` runs need root (to switch users); without it they print that they skipped.
//! If this machine forbids user namespaces, the tests print that they skipped and why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;
use common::effective_ids as ids;
use common::{TCP_ACK as ACK, TCP_SYN as SYN, tcp_segment};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use mailwire::capture::CapturedPacket;
use mailwire::capture::live::{self, CaptureMessage, LiveConfig, port_filter};
use mailwire::capture::sandbox::{self, SandboxError};

/// `sandbox_child` does its work only when this is set (to the parent's netns inode).
const CHILD_ENV: &str = "MAILWIRE_SANDBOX_CHILD";
/// `nobody_child` (run as nobody) starts a `sandboxed_command` child when this is set.
const NOBODY_ENV: &str = "MAILWIRE_SANDBOX_NOBODY";
/// The start-up hook enters the sandbox when this is set (to the parent's netns inode).
const ENTER_ENV: &str = "MAILWIRE_ENTER_SANDBOX_CHILD";
const OK_MARKER: &str = "MAILWIRE-SANDBOX-OK";
const FAILED_MARKER: &str = "MAILWIRE-SANDBOX-FAILED";

// ---------------------------------------------------------------------------------------
// The work done inside the sandbox.

/// `(dst_port, flags, payload)` of a captured IPv4/TCP frame.
fn tcp_of(packet: &CapturedPacket) -> Option<(u16, u8, &[u8])> {
    tcp_segment(packet).map(|s| (s.dst_port, s.flags, s.payload))
}

fn netns_inode() -> u64 {
    std::fs::metadata("/proc/self/ns/net").unwrap().ino()
}

/// Binds the standard POP3 and SMTP ports, captures `lo`, sends a POP3 command and checks
/// that its SYN and its bytes were captured. Returns a one-line summary.
fn capture_in_sandbox(parent_netns: &str) -> Result<String, String> {
    let here = netns_inode().to_string();
    if here == parent_netns {
        return Err(format!("still in the parent's network namespace ({here})"));
    }
    let (uid, gid) = ids();
    if (uid, gid) != (0, 0) {
        return Err(format!("inside, uid/gid should be 0/0, not {uid}/{gid}"));
    }
    let pop3 = TcpListener::bind("127.0.0.1:110").map_err(|e| format!("bind :110: {e}"))?;
    let _smtp = TcpListener::bind("127.0.0.1:25").map_err(|e| format!("bind :25: {e}"))?;

    let (tx, rx) = unbounded();
    let config = LiveConfig {
        filter: port_filter(&[110, 25]),
        ..LiveConfig::default()
    };
    let capture = live::start(config, tx).map_err(|e| e.to_string())?;

    let mut client = TcpStream::connect("127.0.0.1:110").map_err(|e| e.to_string())?;
    client
        .write_all(b"USER mrose\r\n")
        .map_err(|e| e.to_string())?;
    let (mut server, _) = pop3.accept().map_err(|e| e.to_string())?;
    let mut command = [0u8; 12];
    server.read_exact(&mut command).map_err(|e| e.to_string())?;

    let (mut packets, mut saw_syn, mut saw_command) = (0, false, false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(saw_syn && saw_command) && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(CaptureMessage::Packet(packet)) => {
                packets += 1;
                if let Some((dst_port, flags, payload)) = tcp_of(&packet) {
                    saw_syn |= dst_port == 110 && flags & (SYN | ACK) == SYN;
                    saw_command |=
                        dst_port == 110 && payload.windows(12).any(|w| w == b"USER mrose\r\n");
                }
            }
            Ok(CaptureMessage::Failed(error)) => return Err(error.to_string()),
            Ok(CaptureMessage::Stats { .. }) | Err(_) => {}
        }
    }
    capture.stop();
    if !(saw_syn && saw_command) {
        return Err(format!(
            "{packets} packets captured, SYN seen: {saw_syn}, USER command seen: {saw_command}"
        ));
    }
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let uid_map = uid_map.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(format!(
        "bound 127.0.0.1:110 and :25, captured {packets} packets on lo incl. the SYN and \
         \"USER mrose\" (uid_map \"{uid_map}\", netns {here}, parent {parent_netns})"
    ))
}

// ---------------------------------------------------------------------------------------
// The start-up hook for `enter_sandbox`.

/// Runs before `main`, while the process has exactly one thread (as `main` of a program
/// would be). Does nothing unless [`ENTER_ENV`] is set.
extern "C" fn enter_sandbox_before_main() {
    let Ok(parent_netns) = std::env::var(ENTER_ENV) else {
        return;
    };
    let result = sandbox::enter_sandbox()
        .map_err(|e| e.to_string())
        .and_then(|()| capture_in_sandbox(&parent_netns));
    match result {
        Ok(summary) => {
            println!("{OK_MARKER} enter_sandbox: {summary}");
            std::process::exit(0);
        }
        Err(error) => {
            println!("{FAILED_MARKER} enter_sandbox: {error}");
            std::process::exit(1);
        }
    }
}

// SAFETY: `.init_array` holds pointers to `extern "C" fn()`s that the C runtime calls before
// `main`; this static is exactly one such pointer, to a function that takes no arguments and
// never unwinds into the C runtime (it returns or calls `exit`; a panic in an `extern "C"`
// function aborts the process).
#[used]
#[unsafe(link_section = ".init_array")]
static ENTER_SANDBOX_BEFORE_MAIN: extern "C" fn() = enter_sandbox_before_main;

// ---------------------------------------------------------------------------------------
// Child tests: they do nothing unless their parent set the environment variable.

#[test]
fn sandbox_child() {
    let Ok(parent_netns) = std::env::var(CHILD_ENV) else {
        return;
    };
    match capture_in_sandbox(&parent_netns) {
        Ok(summary) => println!("{OK_MARKER} sandboxed_command: {summary}"),
        Err(error) => {
            println!("{FAILED_MARKER} sandboxed_command: {error}");
            panic!("{error}");
        }
    }
}

/// Runs as `nobody`: starts `sandbox_child` through `sandboxed_command` and passes its
/// output on.
#[test]
fn nobody_child() {
    if std::env::var(NOBODY_ENV).is_err() {
        return;
    }
    let (uid, _) = ids();
    assert_ne!(uid, 0, "nobody_child must not run as root");
    let output = match run_sandbox_child() {
        Ok(output) => output,
        Err(error) => {
            println!("{FAILED_MARKER} sandboxed_command as nobody: {error}");
            panic!("{error}");
        }
    };
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success());
}

// ---------------------------------------------------------------------------------------
// Parents.

/// Runs `sandbox_child` of this binary through `sandboxed_command`.
fn run_sandbox_child() -> Result<Output, SandboxError> {
    let exe = std::env::current_exe().unwrap();
    sandbox::sandboxed_command(&exe)
        .args([
            "--exact",
            "capture_sandbox::sandbox_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, netns_inode().to_string())
        .env_remove(NOBODY_ENV)
        .env_remove(ENTER_ENV)
        .output()
        .map_err(|e| SandboxError::spawn_failed(&exe, &e))
}

/// Whether this machine lets us try; prints why not.
fn sandbox_usable(test: &str) -> bool {
    match sandbox::check_sandbox() {
        Ok(()) => true,
        Err(error) => {
            println!("SKIPPED {test}: user namespaces are not available here: {error}");
            false
        }
    }
}

fn assert_marker(output: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("{OK_MARKER} {what}")),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    for line in stdout.lines().filter(|l| l.contains(OK_MARKER)) {
        println!("{line}");
    }
}

#[test]
fn sandboxed_command_captures_as_this_user() {
    if !sandbox_usable("sandboxed_command_captures_as_this_user") {
        return;
    }
    let output = run_sandbox_child().unwrap_or_else(|e| panic!("{e}"));
    assert_marker(&output, "sandboxed_command");
}

#[test]
fn enter_sandbox_captures_as_this_user() {
    if !sandbox_usable("enter_sandbox_captures_as_this_user") {
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .env(ENTER_ENV, netns_inode().to_string())
        .output()
        .unwrap();
    assert_marker(&output, "enter_sandbox");
}

/// Why an unprivileged user may not create user namespaces here, if a kernel setting says
/// so (the parent runs as root, which those settings do not restrict).
fn unprivileged_userns_blocked() -> Option<String> {
    let policy = sandbox::UsernsPolicy::read();
    if policy.max_user_namespaces == Some(0) {
        return Some("sysctl user.max_user_namespaces = 0".to_string());
    }
    if policy.unprivileged_userns_clone == Some(0) {
        return Some("sysctl kernel.unprivileged_userns_clone = 0".to_string());
    }
    match policy.apparmor_restrict_unprivileged_userns {
        Some(value) if value != 0 => Some(format!(
            "sysctl kernel.apparmor_restrict_unprivileged_userns = {value}"
        )),
        _ => None,
    }
}

/// Skips (with the child's explanation) when the nobody child failed because this machine
/// forbids unprivileged user namespaces.
fn skipped_for_policy(test: &str, output: &Output) -> bool {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        return false;
    }
    let Some(reason) = unprivileged_userns_blocked() else {
        return false;
    };
    println!("SKIPPED {test}: unprivileged user namespaces are not available here ({reason}):");
    for line in stdout.lines().filter(|l| l.contains(FAILED_MARKER)) {
        println!("  {line}");
    }
    for line in String::from_utf8_lossy(&output.stderr).lines().take(3) {
        println!("  stderr: {line}");
    }
    true
}

/// `setpriv` to user nobody running `exe`, or `None` (with the reason printed) when this
/// process cannot switch users.
fn as_nobody(test: &str, exe: &Path, dir: &Path) -> Option<Command> {
    if ids().0 != 0 {
        println!("SKIPPED {test}: switching to user nobody needs root");
        return None;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        println!("SKIPPED {test}: setpriv (util-linux) is not installed");
        return None;
    }
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(exe)
        .current_dir(dir);
    Some(command)
}

#[test]
fn sandboxed_command_captures_as_nobody() {
    let test = "sandboxed_command_captures_as_nobody";
    let copy = common::copy_self_for_nobody("sandbox-nobody");
    let Some(mut command) = as_nobody(test, &copy.exe, copy.dir.path()) else {
        return;
    };
    let output = command
        .args([
            "--exact",
            "capture_sandbox::nobody_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NOBODY_ENV, "1")
        .output()
        .unwrap();
    if skipped_for_policy(test, &output) {
        return;
    }
    assert_marker(&output, "sandboxed_command");
}

#[test]
fn enter_sandbox_captures_as_nobody() {
    let test = "enter_sandbox_captures_as_nobody";
    let copy = common::copy_self_for_nobody("sandbox-nobody");
    let Some(mut command) = as_nobody(test, &copy.exe, copy.dir.path()) else {
        return;
    };
    let output = command
        .env(ENTER_ENV, netns_inode().to_string())
        .output()
        .unwrap();
    if skipped_for_policy(test, &output) {
        return;
    }
    assert_marker(&output, "enter_sandbox");
}

#[test]
fn enter_sandbox_refuses_in_a_test_harness() {
    // A test harness always has more than one thread; the refusal comes before any
    // namespace is touched.
    let error = sandbox::enter_sandbox().unwrap_err();
    assert!(
        matches!(error, SandboxError::NotSingleThreaded { threads } if threads >= 2),
        "{error:?}"
    );
}
