//! Live capture: libpcap (through the `pcap` crate) on one interface, in a thread that only
//! reads packets.
//!
//! [`start`] opens the interface and sets the BPF filter *before* it returns, so every packet
//! sent after that is captured; then a thread named `capture-<interface>` reads packets and
//! forwards each one, undecoded, as [`CaptureMessage::Packet`] on a crossbeam channel. It
//! stops when [`LiveCapture::stop`] is called or the handle is dropped, or when a read fails
//! ([`CaptureMessage::Failed`]).
//!
//! Stopping: the thread checks a flag between reads, and `stop` also calls
//! `pcap_breakloop`. Both are needed. On Linux, libpcap's blocking read never returns on its
//! read timeout (it polls again until a packet comes), so without traffic only
//! `pcap_breakloop` (which wakes that poll) ends the read; on systems where the read timeout
//! does return (BPF: macOS, BSD), the flag check after it ends the loop. Then the thread
//! hands out, without waiting, the packets libpcap had already buffered (nothing captured
//! before the stop is lost). Its last message is [`CaptureMessage::Stats`], libpcap's
//! count of packets received and dropped, so a viewer can say whether anything is missing.
//!
//! Without the right to capture (no CAP_NET_RAW), [`start`] falls back to mailwire's capture
//! helper, as Wireshark falls back to dumpcap: the Debian package installs
//! `mailwire-capture` ([`HELPER_PATH`], or the program [`HELPER_ENV`] names) with the capture
//! capabilities, runnable by the `mailwire` group only. It opens the capture and writes a pcap
//! stream to a pipe, which the same capture thread reads; stopping sends it SIGTERM, and its
//! counts come back on its standard error. The window itself never holds capture rights.
//!
//! Nothing here decodes, aggregates or stores packets, and nothing ever invents one: when
//! capture is impossible, [`CaptureError`] says why, in a sentence that includes the fix.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::{CapturedPacket, LinkType};

/// How to open a live capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    /// Interface name as libpcap knows it (`lo` on Linux, `lo0` on macOS/BSD).
    pub interface: String,
    /// A BPF filter expression (see [`port_filter`]); empty captures everything.
    pub filter: String,
    /// Bytes kept per packet. Loopback frames can be far larger than 1514 bytes, so the
    /// default (262144, libpcap's own maximum) keeps them whole.
    pub snaplen: u32,
    /// Size of libpcap's kernel buffer, in bytes (see [`RUN_BUFFER_BYTES`] for what a
    /// size holds).
    pub buffer_size_bytes: u32,
    /// libpcap's read timeout. On BPF systems (macOS, BSD) it also bounds how long
    /// [`LiveCapture::stop`] takes; on Linux the stop wakes the read directly.
    pub read_timeout: Duration,
}

/// libpcap's kernel buffer for a run that sends bursts (a scenario, a check run): room for
/// about 500 loopback packets the capture thread has not read yet. In immediate mode Linux
/// libpcap uses TPACKET_V2, one fixed-size slot per packet as large as a loopback frame can
/// be (the 64 KiB MTU and headers), so the buffer holds `size / 65.6 KiB` slots; and the
/// kernel puts every loopback packet in the ring twice (as sent and as received; libpcap
/// skips the first copy), so a packet costs two slots. libpcap's 2 MiB default holds 15
/// packets; 64 MiB holds about 500 (the kernel allocates twice that: each slot gets a
/// 128 KiB block). Fewer slots drop packets as soon as a busy machine holds the capture
/// thread up for a few milliseconds (`tests/it/capture_live.rs` shows the drops).
pub const RUN_BUFFER_BYTES: u32 = 64 * 1024 * 1024;

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            interface: "lo".to_string(),
            filter: String::new(),
            snaplen: 262_144,
            buffer_size_bytes: 32 * 1024 * 1024,
            read_timeout: Duration::from_millis(100),
        }
    }
}

/// A BPF filter for TCP on any of `ports`: `[110, 25]` gives `"tcp port 110 or tcp port 25"`.
///
/// Repeated ports are listed once. An empty slice gives `"tcp"` (all TCP traffic).
pub fn port_filter(ports: &[u16]) -> String {
    let mut seen: Vec<u16> = Vec::with_capacity(ports.len());
    for &port in ports {
        if !seen.contains(&port) {
            seen.push(port);
        }
    }
    if seen.is_empty() {
        return "tcp".to_string();
    }
    seen.iter()
        .map(|port| format!("tcp port {port}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Where the Debian package installs the capture helper (`src/bin/mailwire-capture.rs`).
pub const HELPER_PATH: &str = "/usr/lib/mailwire/mailwire-capture";
/// An environment variable naming another capture helper (a test's copy, another install).
pub const HELPER_ENV: &str = "MAILWIRE_CAPTURE_HELPER";
/// The group whose members may run the capture helper.
pub const CAPTURE_GROUP: &str = "mailwire";

/// Whether mailwire's capture helper could capture instead (see [`HELPER_PATH`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperAccess {
    /// Not looked for: the process runs as root, where the helper gives no more rights.
    NotTried,
    /// No helper is installed.
    NotInstalled,
    /// The helper is there, but this user may not run it (not in the `mailwire` group, or
    /// not since the last login).
    NotAllowed { path: PathBuf },
    /// The helper ran but could not capture either (`message` is what it said).
    Failed { path: PathBuf, message: String },
}

/// What the capture thread sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureMessage {
    /// One packet, exactly as captured.
    Packet(CapturedPacket),
    /// Reading failed; the capture has ended (a [`CaptureMessage::Stats`] may follow).
    Failed(CaptureError),
    /// The last message of a capture: libpcap's counts since the capture started.
    Stats {
        /// Packets that passed the filter and reached libpcap's buffer.
        received: u32,
        /// Packets that passed the filter but were dropped because the buffer was full
        /// (libpcap's `ps_drop`). Non-zero means the capture is missing packets.
        dropped: u32,
    },
}

/// Why a live capture could not start or could not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureError {
    /// The operating system refused to open a packet socket: the process lacks CAP_NET_RAW.
    PermissionDenied {
        interface: String,
        /// libpcap's message, e.g. `socket: Operation not permitted`.
        message: String,
        /// This program's path, for the `setcap` command (when the OS could tell us).
        exe: Option<PathBuf>,
        /// Whether the process already runs with user id 0 (then `setcap` is not the fix).
        running_as_root: bool,
        /// Whether the capture helper was there to capture instead, and why it did not.
        helper: HelperAccess,
    },
    /// There is no interface of that name.
    NoSuchDevice {
        interface: String,
        /// libpcap's message.
        message: String,
        /// Interfaces libpcap can capture on (may be empty if listing them failed too).
        available: Vec<String>,
    },
    /// libpcap rejected the BPF filter expression.
    BadFilter {
        filter: String,
        /// libpcap's message, e.g. `syntax error in filter expression: syntax error`.
        message: String,
    },
    /// Opening the interface failed for another reason.
    OpenFailed { interface: String, message: String },
    /// A read failed after the capture had started; the capture has ended.
    ReadFailed { interface: String, message: String },
    /// The operating system would not start the capture thread.
    ThreadFailed { interface: String, message: String },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::PermissionDenied {
                interface,
                message,
                exe,
                running_as_root,
                helper,
            } => {
                let exe = exe.as_ref().map_or_else(
                    || "/path/to/mailwire".to_string(),
                    |p| p.display().to_string(),
                );
                write!(
                    f,
                    "Cannot capture packets on interface \"{interface}\": the operating system \
                     refused to open a packet socket (libpcap said \"{message}\"). Capturing \
                     needs the CAP_NET_RAW capability"
                )?;
                if *running_as_root {
                    write!(
                        f,
                        ", which this process lacks even though it runs as root (a container \
                         started without CAP_NET_RAW?); start it with that capability, e.g. \
                         `docker run --cap-add NET_RAW ...`."
                    )?;
                } else {
                    write!(f, ", which normal users do not have. ")?;
                    match helper {
                        HelperAccess::NotTried | HelperAccess::NotInstalled => write!(
                            f,
                            "To watch programs outside mailwire, install mailwire's Debian \
                             package and join its capture group: `sudo adduser $USER \
                             {CAPTURE_GROUP}`, then log out and in again. Or"
                        )?,
                        HelperAccess::NotAllowed { path } => write!(
                            f,
                            "mailwire's capture helper ({}) has it, but only members of the \
                             `{CAPTURE_GROUP}` group may run it: join with `sudo adduser $USER \
                             {CAPTURE_GROUP}`, then log out and in again (or start a shell in \
                             the group with `newgrp {CAPTURE_GROUP}`). Or",
                            path.display()
                        )?,
                        HelperAccess::Failed { path, message } => write!(
                            f,
                            "mailwire's capture helper ({path}) could not capture either (it \
                             said \"{message}\"); its capabilities may be gone: restore them \
                             with `sudo dpkg-reconfigure mailwire` or `sudo setcap \
                             cap_net_raw,cap_net_admin=eip {path}`. Or",
                            path = path.display()
                        )?,
                    }
                    write!(
                        f,
                        " grant this program the capability once with `sudo setcap \
                         cap_net_raw,cap_net_admin+eip {exe}` (again after each rebuild), or \
                         run mailwire as root."
                    )?;
                }
                write!(
                    f,
                    " The built-in demos need none of this: they run servers, client and \
                     capture in their own sandbox (a private user and network namespace)."
                )
            }
            CaptureError::NoSuchDevice {
                interface,
                message,
                available,
            } => {
                write!(
                    f,
                    "Cannot capture on interface \"{interface}\": there is no interface of that \
                     name (libpcap said \"{message}\"). "
                )?;
                if available.is_empty() {
                    write!(f, "Check the name with `ip link` (Linux) or `ifconfig`.")
                } else {
                    write!(
                        f,
                        "Choose one of the interfaces that exist: {}.",
                        available.join(", ")
                    )
                }
            }
            CaptureError::BadFilter { filter, message } => write!(
                f,
                "The capture filter \"{filter}\" is not a valid BPF expression (libpcap said \
                 \"{message}\"). Correct it, e.g. \"tcp port 110 or tcp port 25\"; the syntax \
                 is described in `man pcap-filter`."
            ),
            CaptureError::OpenFailed { interface, message } => write!(
                f,
                "Cannot open interface \"{interface}\" for capture: libpcap said \"{message}\". \
                 Check that the interface exists and is up (`ip link`), then start the capture \
                 again."
            ),
            CaptureError::ReadFailed { interface, message } => write!(
                f,
                "The capture on interface \"{interface}\" stopped: reading a packet failed \
                 (libpcap said \"{message}\"), usually because the interface went down or \
                 away. Packets after this point are not captured; start the capture again \
                 once the interface is back."
            ),
            CaptureError::ThreadFailed { interface, message } => write!(
                f,
                "Cannot capture on interface \"{interface}\": the operating system would not \
                 start the capture thread ({message}). Close other programs or raise the \
                 process limit (`ulimit -u`), then try again."
            ),
        }
    }
}

impl std::error::Error for CaptureError {}

/// A running capture. Stop it with [`LiveCapture::stop`]; dropping it stops it too.
pub struct LiveCapture {
    interface: String,
    link_type: LinkType,
    stop_requested: Arc<AtomicBool>,
    wake: Wake,
    thread: Option<JoinHandle<()>>,
}

/// How [`LiveCapture::stop`] interrupts a read in progress.
enum Wake {
    /// `pcap_breakloop` on the capture this process opened.
    Pcap(pcap::BreakLoop),
    /// SIGTERM to the capture helper, while it has not been reaped (the capture thread sets
    /// this to `None`, under the lock, before it waits for the helper, so the signal never
    /// reaches a process that took over the number).
    Helper(Arc<Mutex<Option<libc::pid_t>>>),
}

impl Wake {
    fn wake(&self) {
        match self {
            Wake::Pcap(breakloop) => breakloop.breakloop(),
            Wake::Helper(pid) => {
                let pid = pid
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(pid) = *pid {
                    // SAFETY: kill takes plain integers; `pid` is our unreaped child.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
            }
        }
    }
}

impl fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveCapture")
            .field("interface", &self.interface)
            .field("link_type", &self.link_type)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl LiveCapture {
    /// The interface being captured.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The link type of every packet this capture sends.
    pub fn link_type(&self) -> LinkType {
        self.link_type
    }

    /// Whether the capture thread is still running (false after a read failure).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the capture and waits for the thread to end (promptly: a read in progress is
    /// interrupted). By then the thread has sent its last message ([`CaptureMessage::Stats`]).
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop_requested.store(true, Ordering::SeqCst);
        // Wakes a read blocked in libpcap; if none is in progress, the next read returns at
        // once (libpcap remembers the request), and the flag ends the loop. A helper stops on
        // SIGTERM, writes what libpcap still held and closes its pipe, which ends the
        // thread's read.
        self.wake.wake();
        if let Some(thread) = self.thread.take() {
            // The thread does not panic; if it did, there is nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Opens `config.interface`, sets `config.filter`, and starts the capture thread, which sends
/// on `tx` until stopped.
///
/// Without the right to capture, the capture helper does it, if it is installed and this
/// user may run it ([`HELPER_PATH`]); otherwise the [`CaptureError::PermissionDenied`] says
/// how to get the right.
///
/// Returns only once the capture is ready: a packet sent on the interface after `start`
/// returns (and matching the filter) is captured.
pub fn start(config: LiveConfig, tx: Sender<CaptureMessage>) -> Result<LiveCapture, CaptureError> {
    match open(&config) {
        Ok(mut capture) => {
            let link_type = link_type_from_dlt(capture.get_datalink().0);
            let wake = Wake::Pcap(capture.breakloop_handle());
            spawn_reader(config, link_type, wake, Source::Device(capture), tx)
        }
        Err(CaptureError::PermissionDenied {
            interface,
            message,
            exe,
            running_as_root: false,
            helper: _,
        }) => {
            let helper = match helper_path() {
                Err(access) => access,
                Ok(path) => match start_with_helper(config, &path, tx) {
                    Ok(capture) => return Ok(capture),
                    Err(HelperError::Capture(error)) => return Err(*error),
                    Err(HelperError::Permission(message)) => HelperAccess::Failed { path, message },
                },
            };
            Err(CaptureError::PermissionDenied {
                interface,
                message,
                exe,
                running_as_root: false,
                helper,
            })
        }
        Err(error) => Err(error),
    }
}

/// The helper to use: [`HELPER_ENV`]'s, else [`HELPER_PATH`], if this user may run it.
fn helper_path() -> Result<PathBuf, HelperAccess> {
    let path = std::env::var_os(HELPER_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(HELPER_PATH), PathBuf::from);
    if !path.exists() {
        return Err(HelperAccess::NotInstalled);
    }
    if !may_execute(&path) {
        return Err(HelperAccess::NotAllowed { path });
    }
    Ok(path)
}

/// Whether this process's real user and groups may run `path` (access(2) with X_OK).
fn may_execute(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c_path` is a valid NUL-terminated string for the whole call.
    unsafe { libc::access(c_path.as_ptr(), libc::X_OK) == 0 }
}

/// Why the helper did not start a capture.
#[derive(Debug)]
pub enum HelperError {
    /// The helper lacks the right too (what it said): the caller explains the permission.
    Permission(String),
    /// Any other failure, already in the words of a direct capture.
    Capture(Box<CaptureError>),
}

/// Starts a capture through the helper program at `helper` (see `src/bin/mailwire-capture.rs`):
/// it opens `config.interface` with `config.filter` and writes a pcap stream to a pipe, which
/// the capture thread reads. [`start`] calls it when this process may not capture; tests call
/// it with a copy of the helper.
///
/// Returns once the helper has written the stream's header, which it does only after its
/// capture is open and filtered, so the same "ready" promise holds as for [`start`].
pub fn start_with_helper(
    config: LiveConfig,
    helper: &Path,
    tx: Sender<CaptureMessage>,
) -> Result<LiveCapture, HelperError> {
    use std::os::fd::IntoRawFd;
    let interface = config.interface.clone();
    let failed = |message: String| {
        HelperError::Capture(Box::new(CaptureError::OpenFailed {
            interface: interface.clone(),
            message,
        }))
    };
    let mut child = Command::new(helper)
        .arg("--interface")
        .arg(&config.interface)
        .arg("--filter")
        .arg(&config.filter)
        .arg("--snaplen")
        .arg(config.snaplen.to_string())
        .arg("--buffer-size")
        .arg(config.buffer_size_bytes.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            failed(format!(
                "cannot start the capture helper {}: {e}",
                helper.display()
            ))
        })?;
    let Some(stdout) = child.stdout.take() else {
        return Err(failed("the capture helper has no output pipe".to_string()));
    };
    // SAFETY: the descriptor comes from `into_raw_fd`, so the capture is its sole owner.
    // This blocks until the helper wrote the pcap header (capture open) or exited.
    let opened = unsafe { pcap::Capture::from_raw_fd(stdout.into_raw_fd()) };
    let capture = match opened {
        Ok(capture) => capture,
        Err(_) => {
            let _ = child.kill();
            let said = helper_said(&mut child);
            return Err(helper_failure(&config, helper, &said));
        }
    };
    let link_type = link_type_from_dlt(capture.get_datalink().0);
    let pid = Arc::new(Mutex::new(libc::pid_t::try_from(child.id()).ok()));
    let wake = Wake::Helper(Arc::clone(&pid));
    let source = Source::Helper {
        capture,
        child,
        pid,
    };
    spawn_reader(config, link_type, wake, source, tx).map_err(|e| HelperError::Capture(Box::new(e)))
}

/// Waits for the helper (whose output has ended) and returns what it said on its standard
/// error.
fn helper_said(child: &mut Child) -> String {
    let mut said = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        // The helper writes a line or two; it is waited for below, so this ends.
        let _ = stderr.by_ref().take(64 * 1024).read_to_string(&mut said);
    }
    let _ = child.wait();
    said
}

/// The helper's line `mailwire-capture: KIND: MESSAGE` as a [`HelperError`].
fn helper_failure(config: &LiveConfig, helper: &Path, said: &str) -> HelperError {
    let line = said
        .lines()
        .find_map(|l| l.strip_prefix("mailwire-capture: "))
        .unwrap_or("");
    let (kind, message) = line.split_once(": ").unwrap_or(("", line));
    let message = message.to_string();
    let interface = config.interface.clone();
    match kind {
        "permission" => HelperError::Permission(message),
        "no-such-device" => HelperError::Capture(Box::new(CaptureError::NoSuchDevice {
            interface,
            message,
            available: pcap::Device::list()
                .map(|devices| devices.into_iter().map(|d| d.name).collect())
                .unwrap_or_default(),
        })),
        "bad-filter" => HelperError::Capture(Box::new(CaptureError::BadFilter {
            filter: config.filter.clone(),
            message,
        })),
        _ => HelperError::Capture(Box::new(CaptureError::OpenFailed {
            interface,
            message: if line.is_empty() {
                format!(
                    "the capture helper {} ended without a capture and said nothing",
                    helper.display()
                )
            } else {
                format!("the capture helper {} said \"{line}\"", helper.display())
            },
        })),
    }
}

/// Starts the thread named `capture-<interface>` on `source`.
fn spawn_reader(
    config: LiveConfig,
    link_type: LinkType,
    wake: Wake,
    source: Source,
    tx: Sender<CaptureMessage>,
) -> Result<LiveCapture, CaptureError> {
    let stop_requested = Arc::new(AtomicBool::new(false));
    let reader = Reader {
        interface: config.interface.clone(),
        link_type,
        stop_requested: Arc::clone(&stop_requested),
        tx,
    };
    // The thread says it runs (its name is set by then) before `start` returns.
    let (running_tx, running_rx) = std::sync::mpsc::sync_channel(0);
    let thread = std::thread::Builder::new()
        .name(format!("capture-{}", config.interface))
        .spawn(move || {
            let _ = running_tx.send(());
            reader.run(source)
        })
        .map_err(|e| CaptureError::ThreadFailed {
            interface: config.interface.clone(),
            message: e.to_string(),
        })?;
    let _ = running_rx.recv();

    Ok(LiveCapture {
        interface: config.interface,
        link_type,
        stop_requested,
        wake,
        thread: Some(thread),
    })
}

/// Opens the device and sets the filter; classifies libpcap's failures.
fn open(config: &LiveConfig) -> Result<pcap::Capture<pcap::Active>, CaptureError> {
    let open_failed = |e: pcap::Error| classify_open_error(&config.interface, e);
    let timeout_ms = i32::try_from(config.read_timeout.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    let mut capture = pcap::Capture::from_device(config.interface.as_str())
        .map_err(open_failed)?
        .immediate_mode(true)
        .timeout(timeout_ms)
        .snaplen(i32::try_from(config.snaplen).unwrap_or(i32::MAX))
        .buffer_size(i32::try_from(config.buffer_size_bytes).unwrap_or(i32::MAX))
        .open()
        .map_err(open_failed)?;
    if !config.filter.is_empty() {
        capture
            .filter(&config.filter, true)
            .map_err(|e| CaptureError::BadFilter {
                filter: config.filter.clone(),
                message: pcap_message(&e),
            })?;
    }
    Ok(capture)
}

/// The `pcap` crate keeps libpcap's message but not its error code, so the kind of failure
/// is recovered from the device list and the message.
fn classify_open_error(interface: &str, error: pcap::Error) -> CaptureError {
    let message = pcap_message(&error);
    let available: Vec<String> = pcap::Device::list()
        .map(|devices| devices.into_iter().map(|d| d.name).collect())
        .unwrap_or_default();
    let listed = available.iter().any(|name| name == interface);
    let lower = message.to_ascii_lowercase();
    // A wrong name is reported first (even when permission is missing too): it is the
    // user's typo and the first thing to fix. If listing failed, the message decides.
    if (!listed && !available.is_empty()) || lower.contains("no such device") {
        CaptureError::NoSuchDevice {
            interface: interface.to_string(),
            message,
            available,
        }
    } else if lower.contains("operation not permitted")
        || lower.contains("permission")
        || lower.contains("access denied")
    {
        CaptureError::PermissionDenied {
            interface: interface.to_string(),
            message,
            exe: std::env::current_exe().ok(),
            running_as_root: running_as_root(),
            helper: HelperAccess::NotTried,
        }
    } else {
        CaptureError::OpenFailed {
            interface: interface.to_string(),
            message,
        }
    }
}

fn pcap_message(error: &pcap::Error) -> String {
    match error {
        pcap::Error::PcapError(message) => message.clone(),
        other => other.to_string(),
    }
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

/// libpcap reports `DLT_` values; [`LinkType`] holds `LINKTYPE_` values. They differ only
/// for raw IP (and OpenBSD's loopback), whose `DLT_` numbers vary between systems.
fn link_type_from_dlt(dlt: i32) -> LinkType {
    if cfg!(target_os = "openbsd") {
        match dlt {
            12 => LinkType::LOOP,
            14 => LinkType::RAW,
            other => LinkType(other),
        }
    } else {
        match dlt {
            12 => LinkType::RAW,
            other => LinkType(other),
        }
    }
}

#[allow(
    clippy::useless_conversion,
    reason = "time_t and suseconds_t are i64 here but i32 on some targets"
)]
fn micros_since_epoch(ts: &libc::timeval) -> i64 {
    i64::from(ts.tv_sec)
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(ts.tv_usec))
}

/// Where the capture thread reads packets.
enum Source {
    /// A capture this process opened.
    Device(pcap::Capture<pcap::Active>),
    /// The helper's pcap stream (a pipe); `pid` is cleared before the helper is reaped.
    Helper {
        capture: pcap::Capture<pcap::Offline>,
        child: Child,
        pid: Arc<Mutex<Option<libc::pid_t>>>,
    },
}

/// The capture thread's state: it reads and forwards, nothing else.
struct Reader {
    interface: String,
    link_type: LinkType,
    stop_requested: Arc<AtomicBool>,
    tx: Sender<CaptureMessage>,
}

impl Reader {
    fn run(self, source: Source) {
        match source {
            Source::Device(mut capture) => {
                if self.read(&mut capture, false) {
                    self.send_stats(&mut capture);
                } else if let Some(mut capture) = self.drain(capture) {
                    self.send_stats(&mut capture);
                }
            }
            Source::Helper {
                mut capture,
                mut child,
                pid,
            } => {
                let failed = self.read(&mut capture, true);
                drop(capture);
                // The helper closed its output; from now on `stop` must not signal it.
                *pid.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                let said = helper_said(&mut child);
                if !failed && !self.stop_requested.load(Ordering::SeqCst) {
                    let why = said
                        .lines()
                        .filter_map(|l| l.strip_prefix("mailwire-capture: "))
                        .find(|l| !l.starts_with("stats: "))
                        .unwrap_or("the capture helper ended");
                    let _ = self
                        .tx
                        .send(CaptureMessage::Failed(CaptureError::ReadFailed {
                            interface: self.interface.clone(),
                            message: why.to_string(),
                        }));
                }
                if let Some((received, dropped)) = helper_stats(&said) {
                    let _ = self.tx.send(CaptureMessage::Stats { received, dropped });
                }
            }
        }
    }

    /// Forwards packets until stopped or the read fails (then says so, and returns true).
    /// From the helper's stream, only the end of the stream ends the read (the helper ends it
    /// once stopped, after the packets it still held).
    fn read<T: pcap::Activated + ?Sized>(
        &self,
        capture: &mut pcap::Capture<T>,
        from_helper: bool,
    ) -> bool {
        // The helper's stream is read to its end, after a stop too: on SIGTERM the helper
        // writes what libpcap still held, then closes the pipe.
        while from_helper || !self.stop_requested.load(Ordering::SeqCst) {
            match capture.next_packet() {
                Ok(packet) => {
                    if !self.forward(&packet) {
                        // Nobody is listening any more.
                        return false;
                    }
                }
                // The helper's stream ended (it stopped, or it failed and says why).
                Err(pcap::Error::NoMorePackets) if from_helper => return false,
                // The read timeout passed (BPF systems), or `pcap_breakloop` interrupted the
                // read (libpcap's PCAP_ERROR_BREAK, which the `pcap` crate reports as
                // NoMorePackets): check the flag.
                Err(pcap::Error::TimeoutExpired | pcap::Error::NoMorePackets) => {}
                // A stream cut short by a stopped helper is no failure.
                Err(_) if from_helper && self.stop_requested.load(Ordering::SeqCst) => {
                    return false;
                }
                Err(error) => {
                    let failed = CaptureError::ReadFailed {
                        interface: self.interface.clone(),
                        message: pcap_message(&error),
                    };
                    // If the receiver is gone there is no one to tell.
                    let _ = self.tx.send(CaptureMessage::Failed(failed));
                    return true;
                }
            }
        }
        false
    }

    /// Sends one packet on; false when nobody listens any more.
    fn forward(&self, packet: &pcap::Packet<'_>) -> bool {
        let header = packet.header;
        let message = CaptureMessage::Packet(CapturedPacket {
            ts_micros: micros_since_epoch(&header.ts),
            link_type: self.link_type,
            data: packet.data.to_vec(),
            orig_len: header.len,
        });
        self.tx.send(message).is_ok()
    }

    /// After a stop: what the kernel captured before it is still in libpcap's buffer (the
    /// last ACKs of a session the caller just watched close); hands it out too, without
    /// waiting for more. Bounded, so a busy interface never holds the stop up.
    fn drain(&self, capture: pcap::Capture<pcap::Active>) -> Option<pcap::Capture<pcap::Active>> {
        let mut capture = capture.setnonblock().ok()?;
        let mut interrupted = false;
        for _ in 0..MAX_DRAINED {
            match capture.next_packet() {
                Ok(packet) => {
                    if !self.forward(&packet) {
                        return None;
                    }
                }
                // The stop's own `pcap_breakloop` may still be pending: it ends one read.
                Err(pcap::Error::NoMorePackets) if !interrupted => interrupted = true,
                // Nothing left (a non-blocking read that finds nothing), or a failure: done.
                Err(_) => break,
            }
        }
        Some(capture)
    }

    fn send_stats(&self, capture: &mut pcap::Capture<pcap::Active>) {
        if let Ok(stats) = capture.stats() {
            let _ = self.tx.send(CaptureMessage::Stats {
                received: stats.received,
                dropped: stats.dropped,
            });
        }
    }
}

/// At most this many packets are handed out after a stop (libpcap's buffer holds a few
/// thousand small ones).
const MAX_DRAINED: usize = 100_000;

/// The helper's last words `mailwire-capture: stats: received N dropped M`.
fn helper_stats(said: &str) -> Option<(u32, u32)> {
    let line = said
        .lines()
        .find_map(|l| l.strip_prefix("mailwire-capture: stats: received "))?;
    let (received, dropped) = line.split_once(" dropped ")?;
    Some((received.trim().parse().ok()?, dropped.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_filter_lists_each_port_once() {
        assert_eq!(port_filter(&[110, 25]), "tcp port 110 or tcp port 25");
        assert_eq!(port_filter(&[110, 110]), "tcp port 110");
        assert_eq!(port_filter(&[]), "tcp");
    }

    #[test]
    fn raw_ip_dlt_becomes_linktype_raw() {
        if !cfg!(target_os = "openbsd") {
            assert_eq!(link_type_from_dlt(12), LinkType::RAW);
        }
        assert_eq!(link_type_from_dlt(1), LinkType::ETHERNET);
        assert_eq!(link_type_from_dlt(0), LinkType::NULL);
        assert_eq!(link_type_from_dlt(276), LinkType::LINUX_SLL2);
    }

    #[test]
    fn permission_text_names_the_capability_and_the_command() {
        let error = CaptureError::PermissionDenied {
            interface: "lo".to_string(),
            message: "socket: Operation not permitted".to_string(),
            exe: Some(PathBuf::from("/usr/local/bin/mailwire")),
            running_as_root: false,
            helper: HelperAccess::NotInstalled,
        };
        let text = error.to_string();
        assert!(text.contains("CAP_NET_RAW"), "{text}");
        assert!(
            text.contains("sudo setcap cap_net_raw,cap_net_admin+eip /usr/local/bin/mailwire"),
            "{text}"
        );
        assert!(text.contains("socket: Operation not permitted"), "{text}");
        assert!(text.contains("sandbox"), "{text}");
    }

    #[test]
    fn bad_filter_text_quotes_filter_and_message() {
        let error = CaptureError::BadFilter {
            filter: "tcp port".to_string(),
            message: "syntax error".to_string(),
        };
        let text = error.to_string();
        assert!(text.contains("\"tcp port\""), "{text}");
        assert!(text.contains("\"syntax error\""), "{text}");
    }
}
