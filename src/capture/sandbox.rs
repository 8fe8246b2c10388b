//! The no-root path for the built-in demos: a private user + network namespace (what
//! `unshare -Urn` makes), where an ordinary user may capture packets, bind ports 110 and 25,
//! and run servers and client — all on the namespace's own loopback interface.
//!
//! Entering the sandbox means `unshare(CLONE_NEWUSER | CLONE_NEWNET)`, then mapping the
//! caller's user and group to root inside (`/proc/self/setgroups` = `deny`, `uid_map` and
//! `gid_map` = `0 <id> 1`), then bringing the new `lo` up with `SIOCSIFFLAGS` (no external
//! `ip` command). The same steps work for root and for normal users, so there is one path.
//! Inside, the process has CAP_NET_RAW and CAP_NET_BIND_SERVICE over the new network
//! namespace only: it sees nothing of the real network, and programs outside the sandbox
//! cannot reach its servers.
//!
//! Two ways in:
//! - [`sandboxed_command`]: a [`std::process::Command`] whose child enters a fresh sandbox
//!   between `fork` and `exec` (where it is single-threaded, as Linux requires). This is the
//!   robust way; [`rerun_in_sandbox`] re-executes mailwire through it (`mailwire run` and
//!   the window), with [`SANDBOX_ENV`] set so the copy knows where it runs.
//! - [`enter_sandbox`]: the calling process enters it itself. Linux creates a user namespace
//!   only for a single-threaded process, so this must run at the start of `main`, before any
//!   thread (tokio runtime, capture thread, window) exists; it checks and refuses otherwise.
//!
//! [`sandbox_available`] / [`check_sandbox`] are a cheap look at the kernel settings that
//! switch unprivileged user namespaces off, for deciding up front and explaining why not.

use std::ffi::OsStr;
use std::fmt;
use std::io;

/// One step of entering the sandbox (named in [`SandboxError::StepFailed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxStep {
    /// `unshare(CLONE_NEWUSER | CLONE_NEWNET)`.
    CreateNamespaces,
    /// Writing `deny` to `/proc/self/setgroups`.
    DenySetgroups,
    /// Writing `0 <uid> 1` to `/proc/self/uid_map`.
    WriteUidMap,
    /// Writing `0 <gid> 1` to `/proc/self/gid_map`.
    WriteGidMap,
    /// Setting `IFF_UP` on the new namespace's `lo`.
    BringLoopbackUp,
}

impl SandboxStep {
    fn description(self) -> &'static str {
        match self {
            SandboxStep::CreateNamespaces => {
                "creating a user and network namespace (unshare CLONE_NEWUSER | CLONE_NEWNET)"
            }
            SandboxStep::DenySetgroups => "writing \"deny\" to /proc/self/setgroups",
            SandboxStep::WriteUidMap => "mapping the user to root inside (/proc/self/uid_map)",
            SandboxStep::WriteGidMap => "mapping the group to root inside (/proc/self/gid_map)",
            SandboxStep::BringLoopbackUp => "bringing the sandbox's loopback interface lo up",
        }
    }
}

/// The kernel settings that decide whether an unprivileged process may create user
/// namespaces, as read from `/proc/sys` (`None`: the setting does not exist here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernsPolicy {
    /// `user.max_user_namespaces`: 0 switches user namespaces off for everyone.
    pub max_user_namespaces: Option<u64>,
    /// `kernel.unprivileged_userns_clone` (Debian and older Ubuntu kernels): 0 allows them
    /// only to root.
    pub unprivileged_userns_clone: Option<u64>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10 and later): 1 lets
    /// unprivileged processes create them but takes away their capabilities inside.
    pub apparmor_restrict_unprivileged_userns: Option<u64>,
    /// Whether the process runs with effective user id 0 (root is not restricted by the
    /// last two settings).
    pub running_as_root: bool,
}

impl UsernsPolicy {
    /// Reads the settings now.
    pub fn read() -> Self {
        Self {
            max_user_namespaces: read_sysctl("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: read_sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict_unprivileged_userns: read_sysctl(
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            ),
            running_as_root: running_as_root(),
        }
    }

    /// The setting that forbids this process a user namespace, if one does:
    /// `(sysctl name, its value)`.
    fn blocking_setting(&self) -> Option<(&'static str, u64)> {
        if self.max_user_namespaces == Some(0) {
            return Some(("user.max_user_namespaces", 0));
        }
        if self.running_as_root {
            return None;
        }
        if self.unprivileged_userns_clone == Some(0) {
            return Some(("kernel.unprivileged_userns_clone", 0));
        }
        if let Some(value) = self.apparmor_restrict_unprivileged_userns
            && value != 0
        {
            return Some(("kernel.apparmor_restrict_unprivileged_userns", value));
        }
        None
    }
}

fn read_sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Why the sandbox could not be entered. The Display text says what failed, why, and what
/// an administrator can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxError {
    /// Not Linux: user and network namespaces are a Linux feature.
    Unsupported,
    /// This kernel has no user namespaces (`/proc/self/ns/user` is missing).
    NoUserNamespaces,
    /// A kernel setting switches user namespaces off for this process.
    Disabled {
        /// The sysctl, e.g. `kernel.unprivileged_userns_clone`.
        sysctl: &'static str,
        value: u64,
    },
    /// [`enter_sandbox`] was called while the process had more than one thread.
    NotSingleThreaded { threads: usize },
    /// [`enter_sandbox`] could not count the process's threads.
    ThreadCountUnknown { message: String },
    /// A step failed with this `errno`.
    StepFailed {
        step: SandboxStep,
        errno: i32,
        policy: UsernsPolicy,
    },
    /// Starting a [`sandboxed_command`] failed. The child reports only the `errno`, not
    /// which step failed, so the explanation leans on the kernel settings.
    SpawnFailed {
        program: String,
        errno: Option<i32>,
        message: String,
        policy: UsernsPolicy,
    },
}

impl SandboxError {
    /// Explains a failed `spawn()`/`status()`/`output()` of a [`sandboxed_command`] running
    /// `program`.
    pub fn spawn_failed(program: impl AsRef<OsStr>, error: &io::Error) -> Self {
        SandboxError::SpawnFailed {
            program: program.as_ref().to_string_lossy().into_owned(),
            errno: error.raw_os_error(),
            message: error.to_string(),
            policy: UsernsPolicy::read(),
        }
    }
}

const WITHOUT_SANDBOX: &str = "Without the sandbox the servers and the client still work; \
     capturing their packets then needs CAP_NET_RAW (setcap or root).";

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxError::Unsupported => write!(
                f,
                "The capture sandbox needs Linux (user and network namespaces); this system \
                 does not have them. {WITHOUT_SANDBOX}"
            ),
            SandboxError::NoUserNamespaces => write!(
                f,
                "The capture sandbox cannot be used: this Linux kernel was built without user \
                 namespaces (/proc/self/ns/user is missing; kernel option CONFIG_USER_NS). \
                 {WITHOUT_SANDBOX}"
            ),
            SandboxError::Disabled { sysctl, value } => write!(
                f,
                "The capture sandbox cannot be used: {} {WITHOUT_SANDBOX}",
                setting_explanation(sysctl, *value)
            ),
            SandboxError::NotSingleThreaded { threads } => write!(
                f,
                "Cannot enter the capture sandbox: the process already runs {threads} threads, \
                 and Linux creates a user namespace only for a single-threaded process. Call \
                 enter_sandbox at the very start of main, before any thread (tokio runtime, \
                 capture, window) starts, or run the work in a new process made by \
                 sandboxed_command."
            ),
            SandboxError::ThreadCountUnknown { message } => write!(
                f,
                "Cannot enter the capture sandbox: counting this process's threads in \
                 /proc/self/status failed ({message}); is /proc mounted?"
            ),
            SandboxError::StepFailed {
                step,
                errno,
                policy,
            } => write!(
                f,
                "Cannot enter the capture sandbox: {} failed ({}). {} {WITHOUT_SANDBOX}",
                step.description(),
                io::Error::from_raw_os_error(*errno),
                cause(Some(*step), Some(*errno), policy)
            ),
            SandboxError::SpawnFailed {
                program,
                errno,
                message,
                policy,
            } => write!(
                f,
                "Cannot start \"{program}\" in the capture sandbox: {message}. {} \
                 {WITHOUT_SANDBOX}",
                cause(None, *errno, policy)
            ),
        }
    }
}

impl std::error::Error for SandboxError {}

/// Why [`rerun_in_sandbox`] could not run the sandboxed copy of mailwire to its end.
#[derive(Debug)]
pub enum RerunError {
    /// The path of this program is unknown (`current_exe` failed).
    NoProgram(io::Error),
    /// The stop signals could not be listened for (so none could be passed on).
    Signals(crate::signals::SignalError),
    /// The copy did not start: the sandbox's explanation.
    Start(SandboxError),
    /// The copy started, but waiting for it failed.
    Wait {
        /// The program that was started.
        program: String,
        /// The operating system's error.
        source: io::Error,
    },
}

impl fmt::Display for RerunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RerunError::NoProgram(e) => write!(f, "cannot find this program: {e}"),
            RerunError::Signals(e) => e.fmt(f),
            RerunError::Start(e) => e.fmt(f),
            RerunError::Wait { program, source } => {
                write!(f, "cannot wait for {program}: {source}")
            }
        }
    }
}

impl std::error::Error for RerunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RerunError::NoProgram(e) | RerunError::Wait { source: e, .. } => Some(e),
            RerunError::Signals(e) => Some(e),
            RerunError::Start(e) => Some(e),
        }
    }
}

/// What a blocking sysctl means and how to change it.
fn setting_explanation(sysctl: &str, value: u64) -> String {
    match sysctl {
        "user.max_user_namespaces" => format!(
            "user namespaces are switched off on this system (sysctl {sysctl} = {value}). An \
             administrator can allow them with `sudo sysctl -w {sysctl}=15000`."
        ),
        "kernel.unprivileged_userns_clone" => format!(
            "unprivileged user namespaces are switched off on this system (sysctl {sysctl} = \
             {value}). An administrator can allow them with `sudo sysctl -w {sysctl}=1`."
        ),
        "kernel.apparmor_restrict_unprivileged_userns" => format!(
            "AppArmor restricts unprivileged user namespaces on this system (sysctl {sysctl} = \
             {value}): a process may create one but gets no capabilities in it. An \
             administrator can lift this with `sudo sysctl -w {sysctl}=0`, or install an \
             AppArmor profile for mailwire that allows `userns,`."
        ),
        _ => format!("the kernel setting {sysctl} = {value} forbids user namespaces."),
    }
}

/// The most likely cause of a failed step (or of a failed spawn, whose step is unknown).
fn cause(step: Option<SandboxStep>, errno: Option<i32>, policy: &UsernsPolicy) -> String {
    if let Some((sysctl, value)) = policy.blocking_setting() {
        return format!("Cause: {}", setting_explanation(sysctl, value));
    }
    match (step, errno) {
        (None, Some(libc::ENOENT)) => {
            "Cause: the program was not found (or /proc is not mounted).".to_string()
        }
        (Some(SandboxStep::CreateNamespaces) | None, Some(libc::EINVAL)) => {
            "Cause: the process had more than one thread, or the kernel lacks user or network \
             namespaces (CONFIG_USER_NS, CONFIG_NET_NS)."
                .to_string()
        }
        (Some(SandboxStep::CreateNamespaces) | None, Some(libc::ENOSPC | libc::EUSERS)) => {
            format!(
                "Cause: the limit on user namespaces is reached (sysctl user.max_user_namespaces \
                 = {}); an administrator can raise it with \
                 `sudo sysctl -w user.max_user_namespaces=15000`.",
                policy
                    .max_user_namespaces
                    .map_or_else(|| "unknown".to_string(), |v| v.to_string())
            )
        }
        (_, Some(libc::EPERM | libc::EACCES)) => {
            "Cause: creating or using user namespaces is forbidden for this process, usually by \
             a container's seccomp filter or a security module (AppArmor, SELinux); when \
             running in a container, allow unshare/user namespaces there."
                .to_string()
        }
        _ => "Cause: unexpected; the message above is the kernel's.".to_string(),
    }
}

/// A cheap check of the kernel settings that switch user namespaces off; does not try to
/// create one. `Ok` means the sandbox should work (a security module or a container's
/// seccomp filter may still refuse, which only trying shows).
pub fn check_sandbox() -> Result<(), SandboxError> {
    if !cfg!(target_os = "linux") {
        return Err(SandboxError::Unsupported);
    }
    if !std::path::Path::new("/proc/self/ns/user").exists() {
        return Err(SandboxError::NoUserNamespaces);
    }
    match UsernsPolicy::read().blocking_setting() {
        Some((sysctl, value)) => Err(SandboxError::Disabled { sysctl, value }),
        None => Ok(()),
    }
}

/// Whether [`check_sandbox`] finds nothing in the way.
pub fn sandbox_available() -> bool {
    check_sandbox().is_ok()
}

/// Moves the calling process into a new sandbox (user + network namespace, `lo` up).
///
/// Must be called while the process is single-threaded — at the start of `main`, before a
/// tokio runtime, a capture or a window starts any thread; it reads `Threads:` in
/// `/proc/self/status` and refuses ([`SandboxError::NotSingleThreaded`]) otherwise. Affects
/// the whole process for the rest of its life: afterwards it sees only the sandbox's
/// loopback interface.
pub fn enter_sandbox() -> Result<(), SandboxError> {
    if !cfg!(target_os = "linux") {
        return Err(SandboxError::Unsupported);
    }
    let threads = thread_count()?;
    if threads != 1 {
        return Err(SandboxError::NotSingleThreaded { threads });
    }
    sys::enter().map_err(|(step, errno)| SandboxError::StepFailed {
        step,
        errno,
        policy: UsernsPolicy::read(),
    })
}

fn thread_count() -> Result<usize, SandboxError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| {
        SandboxError::ThreadCountUnknown {
            message: e.to_string(),
        }
    })?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| SandboxError::ThreadCountUnknown {
            message: "no Threads: line".to_string(),
        })
}

/// A command whose child process enters a fresh sandbox before it executes `program`.
///
/// Configure it like any `Command` (arguments, environment, stdio). The sandbox is made in
/// the child between `fork` and `exec`, where it is single-threaded, so this works from a
/// process with any number of threads. If a step fails, spawning fails with that step's
/// `errno`; [`SandboxError::spawn_failed`] turns the error into an explanation.
#[cfg(unix)]
pub fn sandboxed_command(program: impl AsRef<OsStr>) -> std::process::Command {
    use std::os::unix::process::CommandExt;

    let mut command = std::process::Command::new(program);
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe functions may be called. `sys::enter` makes only raw system calls
    // (geteuid, getegid, unshare, open, write, close, socket, ioctl) on stack buffers and
    // static strings; it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(|| sys::enter().map_err(|(_, errno)| io::Error::from_raw_os_error(errno)));
    }
    command
}

/// Set in the environment of the copy of mailwire that [`rerun_in_sandbox`] starts.
pub const SANDBOX_ENV: &str = "MAILWIRE_IN_SANDBOX";

/// Whether this process is the sandboxed copy of mailwire that [`rerun_in_sandbox`]
/// started.
pub fn is_sandboxed_copy() -> bool {
    std::env::var_os(SANDBOX_ENV).is_some()
}

/// What becomes of the sandboxed copy if this process dies of a signal it cannot pass on
/// (SIGKILL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnParentDeath {
    /// The copy lives on.
    LiveOn,
    /// The copy gets SIGTERM (Linux `PR_SET_PDEATHSIG`), so it does not outlive the
    /// process that started it.
    Terminate,
}

/// Runs this program again, with the same arguments, in a fresh sandbox (with
/// [`SANDBOX_ENV`] set) and waits for it. A stop signal for this process (SIGTERM, SIGINT,
/// SIGHUP) is passed on to the copy as SIGTERM, so it can clean up before it ends. `Err`
/// when the copy could not be started or waited for; its exit status otherwise.
pub fn rerun_in_sandbox(
    on_parent_death: OnParentDeath,
) -> Result<std::process::ExitStatus, RerunError> {
    let exe = std::env::current_exe().map_err(RerunError::NoProgram)?;
    let mut command = sandboxed_command(&exe);
    command
        .args(std::env::args_os().skip(1))
        .env(SANDBOX_ENV, "1");
    #[cfg(target_os = "linux")]
    if on_parent_death == OnParentDeath::Terminate {
        use std::os::unix::process::CommandExt;
        // SAFETY: runs in the child between fork and exec; prctl is async-signal-safe and
        // touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
    }
    use crate::signals::LaunchError;
    crate::signals::run_passing_on_stop_signals(&mut command).map_err(|e| match e {
        LaunchError::Signals(e) => RerunError::Signals(e),
        LaunchError::Spawn(e) => RerunError::Start(SandboxError::spawn_failed(&exe, &e)),
        LaunchError::Wait { program, source } => RerunError::Wait { program, source },
    })
}

#[cfg(unix)]
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(not(unix))]
fn running_as_root() -> bool {
    false
}

/// The system calls. Everything here must stay async-signal-safe (no allocation, no locks):
/// it also runs between `fork` and `exec`.
#[cfg(target_os = "linux")]
mod sys {
    use std::ffi::CStr;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::SandboxStep;

    /// The whole sequence; on failure, the step and its `errno`.
    pub(super) fn enter() -> Result<(), (SandboxStep, i32)> {
        // The maps must name the ids the process has *before* unshare: afterwards, until
        // the maps exist, it reads as the overflow id (65534).
        // SAFETY: geteuid and getegid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };

        // SAFETY: unshare takes no pointers; it changes only this process's namespaces.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } != 0 {
            return Err((SandboxStep::CreateNamespaces, errno()));
        }
        match write_file(c"/proc/self/setgroups", b"deny") {
            // Kernels before 3.19 have no setgroups file and need no "deny".
            Ok(()) | Err(libc::ENOENT) => {}
            Err(e) => return Err((SandboxStep::DenySetgroups, e)),
        }
        write_file(c"/proc/self/uid_map", map_line(uid).as_bytes())
            .map_err(|e| (SandboxStep::WriteUidMap, e))?;
        write_file(c"/proc/self/gid_map", map_line(gid).as_bytes())
            .map_err(|e| (SandboxStep::WriteGidMap, e))?;
        bring_loopback_up().map_err(|e| (SandboxStep::BringLoopbackUp, e))
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    }

    /// `0 <id> 1\n` in a stack buffer.
    struct MapLine {
        bytes: [u8; 24],
        len: usize,
    }

    impl MapLine {
        fn push(&mut self, byte: u8) {
            if let Some(slot) = self.bytes.get_mut(self.len) {
                *slot = byte;
                self.len += 1;
            }
        }

        fn as_bytes(&self) -> &[u8] {
            self.bytes.get(..self.len).unwrap_or(&[])
        }
    }

    fn map_line(id: u32) -> MapLine {
        let mut line = MapLine {
            bytes: [0; 24],
            len: 0,
        };
        line.push(b'0');
        line.push(b' ');
        let mut digits = [0u8; 10];
        let mut count = 0;
        let mut rest = id;
        loop {
            if let Some(slot) = digits.get_mut(count) {
                // rest % 10 < 10, so the cast keeps the value.
                *slot = b'0' + (rest % 10) as u8;
            }
            count += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for digit in digits.iter().take(count).rev() {
            line.push(*digit);
        }
        for byte in b" 1\n" {
            line.push(*byte);
        }
        line
    }

    fn write_file(path: &CStr, contents: &[u8]) -> Result<(), i32> {
        // SAFETY: `path` is NUL-terminated and outlives the call.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(errno());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `contents` is valid for `contents.len()` bytes during the call.
        let written =
            unsafe { libc::write(file.as_raw_fd(), contents.as_ptr().cast(), contents.len()) };
        match usize::try_from(written) {
            Ok(n) if n == contents.len() => Ok(()),
            Ok(_) => Err(libc::EIO),
            Err(_) => Err(errno()),
        }
    }

    fn bring_loopback_up() -> Result<(), i32> {
        // SAFETY: socket takes no pointers.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(errno());
        }
        // SAFETY: `fd` was just returned by socket and nothing else owns it.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain data (a name and a union of integers and plain structs);
        // all-zero bytes are a valid value.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo") {
            *slot = *byte as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS reads ifr_name (NUL-terminated: the rest is zero) and writes
        // the flags into `request`, which lives across the call.
        if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut request) } < 0 {
            return Err(errno());
        }
        // SAFETY: SIOCGIFFLAGS has just filled the union's flags member.
        let flags = unsafe { request.ifr_ifru.ifru_flags };
        request.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads ifr_name and the flags from `request`, which lives
        // across the call.
        if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS as _, &request) } < 0 {
            return Err(errno());
        }
        disable_segmentation_offload(&socket, &mut request);
        Ok(())
    }

    /// Switches generic segmentation offload and TCP segmentation offload off on the
    /// sandbox's own `lo`, so segments are cut at the MSS before libpcap sees them (with
    /// offload on, loopback hands over "super segments" far larger than the MSS, and a
    /// small-MSS scenario would not show its many segments). Best effort: a failure only
    /// means larger segments.
    fn disable_segmentation_offload(socket: &OwnedFd, request: &mut libc::ifreq) {
        const SIOCETHTOOL: libc::c_ulong = 0x8946;
        const ETHTOOL_STSO: u32 = 0x1f;
        const ETHTOOL_SGSO: u32 = 0x24;
        #[repr(C)]
        struct EthtoolValue {
            cmd: u32,
            data: u32,
        }
        for cmd in [ETHTOOL_STSO, ETHTOOL_SGSO] {
            let mut value = EthtoolValue { cmd, data: 0 };
            request.ifr_ifru.ifru_data = (&raw mut value).cast();
            // SAFETY: SIOCETHTOOL reads ifr_name and the ethtool_value that ifr_data points
            // to; `value` lives across the call. The result is deliberately ignored.
            let _ = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCETHTOOL as _, &*request) };
        }
    }

    #[cfg(test)]
    mod tests {
        use super::map_line;

        #[test]
        fn map_lines() {
            assert_eq!(map_line(0).as_bytes(), b"0 0 1\n");
            assert_eq!(map_line(65534).as_bytes(), b"0 65534 1\n");
            assert_eq!(map_line(u32::MAX).as_bytes(), b"0 4294967295 1\n");
        }
    }
}

/// Elsewhere every attempt fails with `ENOSYS`; [`check_sandbox`] says why first.
#[cfg(not(target_os = "linux"))]
mod sys {
    use super::SandboxStep;

    pub(super) fn enter() -> Result<(), (SandboxStep, i32)> {
        Err((SandboxStep::CreateNamespaces, libc::ENOSYS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerun_errors_say_what_failed() {
        let os = || io::Error::other("gone");
        assert_eq!(
            RerunError::NoProgram(os()).to_string(),
            "cannot find this program: gone"
        );
        assert_eq!(
            RerunError::Wait {
                program: "/usr/bin/mailwire".into(),
                source: os()
            }
            .to_string(),
            "cannot wait for /usr/bin/mailwire: gone"
        );
        assert_eq!(
            RerunError::Signals(crate::signals::SignalError::ThreadEnded).to_string(),
            "the signal thread ended before it was ready"
        );
        let start = RerunError::Start(SandboxError::Unsupported);
        assert_eq!(start.to_string(), SandboxError::Unsupported.to_string());
    }

    fn policy() -> UsernsPolicy {
        UsernsPolicy {
            max_user_namespaces: Some(1000),
            unprivileged_userns_clone: None,
            apparmor_restrict_unprivileged_userns: None,
            running_as_root: false,
        }
    }

    #[test]
    fn debian_switch_is_named_with_its_fix() {
        let error = SandboxError::StepFailed {
            step: SandboxStep::CreateNamespaces,
            errno: libc::EPERM,
            policy: UsernsPolicy {
                unprivileged_userns_clone: Some(0),
                ..policy()
            },
        };
        let text = error.to_string();
        assert!(
            text.contains("kernel.unprivileged_userns_clone = 0"),
            "{text}"
        );
        assert!(
            text.contains("sudo sysctl -w kernel.unprivileged_userns_clone=1"),
            "{text}"
        );
        assert!(text.contains("Operation not permitted"), "{text}");
    }

    #[test]
    fn apparmor_restriction_is_named_with_its_fix() {
        let error = SandboxError::StepFailed {
            step: SandboxStep::WriteUidMap,
            errno: libc::EPERM,
            policy: UsernsPolicy {
                apparmor_restrict_unprivileged_userns: Some(1),
                ..policy()
            },
        };
        let text = error.to_string();
        assert!(text.contains("/proc/self/uid_map"), "{text}");
        assert!(
            text.contains("sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
            "{text}"
        );
    }

    #[test]
    fn root_is_not_blocked_by_unprivileged_switches() {
        let root = UsernsPolicy {
            unprivileged_userns_clone: Some(0),
            apparmor_restrict_unprivileged_userns: Some(1),
            running_as_root: true,
            ..policy()
        };
        assert_eq!(root.blocking_setting(), None);
        let off = UsernsPolicy {
            max_user_namespaces: Some(0),
            ..root
        };
        assert_eq!(
            off.blocking_setting(),
            Some(("user.max_user_namespaces", 0))
        );
    }

    #[test]
    fn refuses_in_a_multithreaded_process() {
        // The test harness runs this test on a thread of its own, so there are at least two;
        // the refusal comes before any namespace is touched.
        let error = enter_sandbox().unwrap_err();
        assert!(
            matches!(error, SandboxError::NotSingleThreaded { threads } if threads >= 2),
            "{error:?}"
        );
        assert!(error.to_string().contains("single-threaded"));
    }
}
