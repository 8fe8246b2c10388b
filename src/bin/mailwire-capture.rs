//! `mailwire-capture`: the one part of mailwire that may hold capture rights.
//!
//! Like Wireshark's dumpcap: the Debian package installs it as
//! `/usr/lib/mailwire/mailwire-capture`, owned `root:mailwire`, mode 0750, with the file
//! capabilities `cap_net_raw,cap_net_admin=eip`; members of the `mailwire` group may run it,
//! nobody else. The window and every other command never hold those rights: when mailwire
//! cannot open a capture itself, `capture::live` starts this program and reads its output.
//!
//! ```text
//! mailwire-capture --interface NAME [--filter EXPR] [--snaplen N] [--buffer-size N]
//! ```
//!
//! It does one thing: it opens a libpcap live capture on interface NAME (immediate mode; a
//! kernel network interface or `any`, not libpcap's other sources such as netfilter queues or
//! D-Bus), drops every capability (and sets `no_new_privs`), sets the BPF filter EXPR, then
//! writes the packets to standard output as a classic pcap stream (microsecond time stamps), flushed
//! after each packet, until SIGTERM, SIGINT or SIGHUP (then it writes what libpcap still
//! holds, without waiting for more, and closes the stream), or until the reader closes the
//! pipe. It opens no file, no other socket, starts no program and reads no configuration. Its
//! arguments are checked before anything is opened: an interface name as Linux allows it
//! (1 to 15 characters of `A-Z a-z 0-9 . _ -`), a filter of at most 1024 printable ASCII
//! characters (libpcap's compiler checks the rest), and numbers in a range.
//!
//! What it says, on standard error, one line each:
//! - on failure `mailwire-capture: KIND: MESSAGE`, exit status 1 (2 for bad arguments), where
//!   KIND is `arguments`, `permission`, `no-such-device`, `bad-filter`, `open-failed` or
//!   `read-failed`;
//! - at the end of a capture `mailwire-capture: stats: received N dropped M`, exit status 0.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// The longest filter accepted (mailwire's own are a few dozen characters).
const MAX_FILTER: usize = 1024;
/// libpcap's largest snapshot length.
const MAX_SNAPLEN: u32 = 262_144;
/// The kernel buffer a member of the group may ask for, at most.
const MAX_BUFFER: u32 = 64 * 1024 * 1024;

/// What was asked for, checked.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    interface: String,
    filter: String,
    snaplen: u32,
    buffer_size: u32,
}

/// Why the helper stopped without capturing: its `KIND` word and the message.
struct Failure {
    kind: &'static str,
    message: String,
}

impl Failure {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(args) => args,
        Err(_) => return fail(&Failure::new("arguments", "an argument is not valid UTF-8")),
    };
    let request = match parse_args(&args) {
        Ok(request) => request,
        Err(message) => return fail(&Failure::new("arguments", message)),
    };
    match capture(&request) {
        Ok((received, dropped)) => {
            eprintln!("mailwire-capture: stats: received {received} dropped {dropped}");
            ExitCode::SUCCESS
        }
        Err(failure) => fail(&failure),
    }
}

fn fail(failure: &Failure) -> ExitCode {
    // One line: the reader takes the first line that starts with the program's name.
    let message = failure.message.replace(['\n', '\r'], " ");
    eprintln!("mailwire-capture: {}: {message}", failure.kind);
    if failure.kind == "arguments" {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// Checks the command line; nothing is opened before it passed.
fn parse_args(args: &[String]) -> Result<Request, String> {
    let mut interface = None;
    let mut filter = None;
    let mut snaplen = None;
    let mut buffer_size = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let slot = match flag.as_str() {
            "--interface" => &mut interface,
            "--filter" => &mut filter,
            "--snaplen" => &mut snaplen,
            "--buffer-size" => &mut buffer_size,
            other => {
                return Err(format!(
                    "unknown argument \"{}\" (usage: mailwire-capture --interface NAME \
                     [--filter EXPR] [--snaplen N] [--buffer-size N])",
                    printable(other)
                ));
            }
        };
        let Some(value) = rest.next() else {
            return Err(format!("{flag} needs a value"));
        };
        if slot.replace(value.clone()).is_some() {
            return Err(format!("{flag} is given twice"));
        }
    }
    let interface = interface.ok_or("--interface NAME is required")?;
    check_interface(&interface)?;
    let filter = filter.unwrap_or_default();
    check_filter(&filter)?;
    let snaplen = number("--snaplen", snaplen.as_deref(), MAX_SNAPLEN, MAX_SNAPLEN)?;
    let buffer_size = number(
        "--buffer-size",
        buffer_size.as_deref(),
        4 * 1024 * 1024,
        MAX_BUFFER,
    )?;
    Ok(Request {
        interface,
        filter,
        snaplen,
        buffer_size,
    })
}

/// A Linux interface name: 1 to 15 bytes (IFNAMSIZ - 1), not `.` or `..`, here limited to
/// letters, digits, `.`, `_` and `-` (the kernel also allows other bytes; mailwire never
/// names such an interface).
fn check_interface(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || !name.chars().all(allowed)
    {
        return Err(format!(
            "\"{}\" is not an interface name (1 to 15 letters, digits, '.', '_' or '-')",
            printable(name)
        ));
    }
    Ok(())
}

/// A BPF expression: printable ASCII, at most [`MAX_FILTER`] characters.
fn check_filter(filter: &str) -> Result<(), String> {
    if filter.len() > MAX_FILTER {
        return Err(format!(
            "the filter is {} characters long; at most {MAX_FILTER} are accepted",
            filter.len()
        ));
    }
    if let Some(bad) = filter.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "the filter may hold only printable ASCII characters, not {:?}",
            bad
        ));
    }
    Ok(())
}

fn number(flag: &str, value: Option<&str>, default: u32, max: u32) -> Result<u32, String> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{flag} wants a number from 1 to {max}, not \"{}\"",
            printable(value)
        )),
    }
}

/// At most 40 characters of `text`, control characters escaped, for an error message.
fn printable(text: &str) -> String {
    text.chars()
        .take(40)
        .flat_map(char::escape_default)
        .collect()
}

/// Opens the capture, drops the rights, streams packets until told to stop; returns
/// libpcap's counts (received, dropped).
fn capture(request: &Request) -> Result<(u32, u32), Failure> {
    // SAFETY: isatty only inspects file descriptor 1.
    if unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1 {
        return Err(Failure::new(
            "arguments",
            "standard output is a terminal; pipe it to a program that reads pcap \
             (mailwire does this itself)",
        ));
    }
    // Signals are taken by the watcher thread (through a signalfd), never by a handler.
    let signals = block_stop_signals()?;

    // Only the kernel's network interfaces (and libpcap's `any`), not the other things
    // libpcap can open (netfilter queues and logs, D-Bus, USB and Bluetooth monitors).
    let network_interface = request.interface == "any"
        || std::path::Path::new("/sys/class/net")
            .join(&request.interface)
            .exists();
    let listed: Vec<String> = pcap::Device::list()
        .map(|devices| devices.into_iter().map(|d| d.name).collect())
        .unwrap_or_default();
    if !network_interface || (!listed.is_empty() && !listed.contains(&request.interface)) {
        return Err(Failure::new(
            "no-such-device",
            format!(
                "there is no network interface \"{}\" (there are: {})",
                request.interface,
                listed
                    .iter()
                    .filter(|name| {
                        *name == "any" || std::path::Path::new("/sys/class/net").join(name).exists()
                    })
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let open_failed = |e: pcap::Error| {
        let message = pcap_message(&e);
        let lower = message.to_ascii_lowercase();
        let kind = if lower.contains("operation not permitted") || lower.contains("permission") {
            "permission"
        } else if lower.contains("no such device") {
            "no-such-device"
        } else {
            "open-failed"
        };
        Failure::new(kind, message)
    };
    let mut capture = pcap::Capture::from_device(request.interface.as_str())
        .map_err(open_failed)?
        .immediate_mode(true)
        .timeout(100)
        .snaplen(i32::try_from(request.snaplen).unwrap_or(i32::MAX))
        .buffer_size(i32::try_from(request.buffer_size).unwrap_or(i32::MAX))
        .open()
        .map_err(open_failed)?;
    // The packet socket is open: no right is needed from here on, not even to set the filter
    // (SO_ATTACH_FILTER is unprivileged), so the filter is compiled without any.
    drop_capabilities()?;
    if !request.filter.is_empty() {
        capture
            .filter(&request.filter, true)
            .map_err(|e| Failure::new("bad-filter", pcap_message(&e)))?;
    }

    // SAFETY: file descriptor 1 is this process's standard output; nothing else in this
    // program writes to it (Rust's `stdout()` is never used), so the savefile owns it.
    let mut out = unsafe { capture.savefile_raw_fd(libc::STDOUT_FILENO) }.map_err(|e| {
        Failure::new(
            "open-failed",
            format!("cannot write to standard output: {e}"),
        )
    })?;
    // The pcap header is the reader's sign that the capture is ready.
    if out.flush().is_err() {
        return Ok((0, 0));
    }

    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let wake = capture.breakloop_handle();
    let watcher_stop = std::sync::Arc::clone(&stop);
    std::thread::Builder::new()
        .name("stop-watcher".to_string())
        .spawn(move || {
            wait_for_stop(signals);
            watcher_stop.store(true, Ordering::SeqCst);
            wake.breakloop();
        })
        .map_err(|e| Failure::new("open-failed", format!("cannot start a thread: {e}")))?;

    let mut reader_gone = false;
    while !stop.load(Ordering::SeqCst) {
        match capture.next_packet() {
            Ok(packet) => {
                out.write(&packet);
                if out.flush().is_err() {
                    // The reader went away: nothing more to do.
                    reader_gone = true;
                    break;
                }
            }
            Err(pcap::Error::TimeoutExpired | pcap::Error::NoMorePackets) => {}
            Err(e) => return Err(Failure::new("read-failed", pcap_message(&e))),
        }
    }
    // Told to stop: what the kernel captured before the signal is still in libpcap's buffer
    // (the last ACKs of a session mailwire just watched close); it goes out too, without
    // waiting for more, before the pipe closes (mailwire reads to its end).
    let capture = if reader_gone {
        Some(capture)
    } else {
        drain(capture, &mut out)
    };
    drop(out);
    let _ = std::io::stderr().flush();
    Ok(capture
        .and_then(|mut c| c.stats().ok())
        .map(|s| (s.received, s.dropped))
        .unwrap_or((0, 0)))
}

/// At most this many packets are written after a stop (libpcap's buffer holds a few thousand
/// small ones), so a busy interface never holds the stop up.
const MAX_DRAINED: usize = 100_000;

/// Writes what libpcap holds already, without blocking; returns the capture for its counts
/// (`None` if it could not be made non-blocking: then nothing is drained).
fn drain(
    capture: pcap::Capture<pcap::Active>,
    out: &mut pcap::Savefile,
) -> Option<pcap::Capture<pcap::Active>> {
    let mut capture = capture.setnonblock().ok()?;
    // The stop's own `pcap_breakloop` may still be pending: it ends one read.
    let mut interrupted = false;
    for _ in 0..MAX_DRAINED {
        match capture.next_packet() {
            Ok(packet) => {
                out.write(&packet);
                if out.flush().is_err() {
                    break;
                }
            }
            Err(pcap::Error::NoMorePackets) if !interrupted => interrupted = true,
            // Nothing left (a non-blocking read that finds nothing), or a failure: done.
            Err(_) => break,
        }
    }
    Some(capture)
}

/// libpcap's own message, without the `pcap` crate's prefix.
fn pcap_message(error: &pcap::Error) -> String {
    match error {
        pcap::Error::PcapError(message) => message.clone(),
        other => other.to_string(),
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread (and so in threads started later) and
/// returns a signalfd that reports them.
fn block_stop_signals() -> Result<libc::c_int, Failure> {
    // SAFETY: a zeroed sigset_t is a valid value to pass to sigemptyset, which initialises
    // it; sigaddset, pthread_sigmask and signalfd get pointers to that initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(Failure::new("open-failed", "cannot block the stop signals"));
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(Failure::new(
                "open-failed",
                format!("signalfd: {}", std::io::Error::last_os_error()),
            ));
        }
        Ok(fd)
    }
}

/// Returns when a stop signal came or the reader closed the pipe.
fn wait_for_stop(signal_fd: libc::c_int) {
    let mut fds = [
        libc::pollfd {
            fd: signal_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        // A pipe's write end reports POLLERR once its read end is closed.
        libc::pollfd {
            fd: libc::STDOUT_FILENO,
            events: 0,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a valid array of two pollfd structures for the whole call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n > 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// Gives up every capability (effective, permitted, inheritable) and sets `no_new_privs`,
/// so nothing after the capture opened can use the file's rights or gain others.
fn drop_capabilities() -> Result<(), Failure> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads one header and, for version 3, two data structures, laid out as
    // the kernel's __user_cap_header_struct and __user_cap_data_struct; both live across the
    // call. prctl(PR_SET_NO_NEW_PRIVS) takes plain integers.
    let (capset, no_new_privs) = unsafe {
        (
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
        )
    };
    if capset != 0 || no_new_privs != 0 {
        return Err(Failure::new(
            "open-failed",
            format!(
                "cannot give up the capture rights after opening: {}",
                std::io::Error::last_os_error()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn accepts_what_mailwire_sends() {
        let request = parse_args(&args(&[
            "--interface",
            "lo",
            "--filter",
            "tcp port 110 or tcp port 25",
            "--snaplen",
            "262144",
            "--buffer-size",
            "4194304",
        ]))
        .unwrap();
        assert_eq!(request.interface, "lo");
        assert_eq!(request.filter, "tcp port 110 or tcp port 25");
        assert_eq!(request.snaplen, 262_144);
        let defaults = parse_args(&args(&["--interface", "eth0.10"])).unwrap();
        assert_eq!(defaults.filter, "");
        assert_eq!(defaults.buffer_size, 4 * 1024 * 1024);
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            &[][..],
            &["--interface"][..],
            &["--interface", ""][..],
            &["--interface", "../../etc"][..],
            &["--interface", ".."][..],
            &["--interface", "a-very-long-interface-name"][..],
            &["--interface", "lo", "--interface", "lo"][..],
            &["--interface", "lo", "--output", "/etc/passwd"][..],
            &["--interface", "lo", "-w", "x"][..],
            &["--interface", "lo", "--filter", "tcp\nport 1"][..],
            &["--interface", "lo", "--snaplen", "0"][..],
            &["--interface", "lo", "--snaplen", "262145"][..],
            &["--interface", "lo", "--buffer-size", "99999999999"][..],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?} was accepted");
        }
        let long = "x".repeat(MAX_FILTER + 1);
        assert!(parse_args(&args(&["--interface", "lo", "--filter", &long])).is_err());
    }
}
