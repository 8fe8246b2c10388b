//! Terminal echo control, so a password typed at the console client is not shown.

/// Turns off the echo of the terminal on standard input until dropped; does nothing when
/// standard input is not a terminal (a script, a pipe) or its settings cannot be read.
pub struct EchoOff {
    saved: Option<libc::termios>,
}

impl EchoOff {
    pub fn new() -> EchoOff {
        // SAFETY: termios is plain integers and arrays, so all-zero bytes are a valid value.
        // isatty, tcgetattr and tcsetattr take file descriptor 0 (which outlives this guard)
        // and a pointer to `settings`, a local that lives across each call and is not kept.
        let saved = unsafe {
            let mut settings: libc::termios = std::mem::zeroed();
            if libc::isatty(libc::STDIN_FILENO) != 1
                || libc::tcgetattr(libc::STDIN_FILENO, &mut settings) != 0
            {
                None
            } else {
                let saved = settings;
                settings.c_lflag &= !libc::ECHO;
                settings.c_lflag |= libc::ECHONL;
                (libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &settings) == 0)
                    .then_some(saved)
            }
        };
        EchoOff { saved }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: tcsetattr takes file descriptor 0 and a pointer to `saved`, which
            // lives across the call and is not kept; it restores the settings read in `new`.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}
