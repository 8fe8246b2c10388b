//! Child processes that never outlive their test: [`Spawned`] signals, waits with a limit,
//! collects output, and kills and reaps the child on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

/// The `mailwire` binary under test.
pub const MAILWIRE: &str = env!("CARGO_BIN_EXE_mailwire");

/// A child process a test started. Dropping it kills and reaps the child if it still runs,
/// so a test that fails half-way leaves no process behind (a server, Xvfb, Dovecot).
pub struct Spawned {
    child: Option<std::process::Child>,
    program: String,
}

impl Spawned {
    /// Starts `command`; panics naming the program if it cannot be started.
    pub fn new(command: &mut std::process::Command) -> Spawned {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot run {program}: {e}. Is it installed? (.ci/run installs it)")
        });
        Spawned::from(child, &program)
    }

    /// Takes charge of a child started elsewhere; `program` names it in failures.
    pub fn from(child: std::process::Child, program: &str) -> Spawned {
        Spawned {
            child: Some(child),
            program: program.to_string(),
        }
    }

    /// Sends `signal` to the child; panics if it has already ended or the kernel refuses.
    pub fn signal(&mut self, signal: libc::c_int) {
        if let Some(status) = self.try_wait().unwrap() {
            panic!(
                "{} ended ({status}) before it got signal {signal}",
                self.program
            );
        }
        let pid = libc::pid_t::try_from(self.id()).unwrap();
        // SAFETY: kill takes no pointers. `pid` is our own child and `try_wait` just said it
        // has not been reaped (`Child` reaps only through `self`), so the pid still names it
        // (at worst as a zombie) and cannot belong to another process.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            result,
            0,
            "kill({pid}, {signal}) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits for the child to end; kills it and panics if that takes longer than `limit`.
    pub fn wait_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                self.kill_and_reap();
                panic!("{} did not end within {limit:?}", self.program);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` and waits up to `grace` for the child to end; kills it after that.
    /// The exit status, if it ended by itself.
    pub fn stop(
        &mut self,
        signal: libc::c_int,
        grace: Duration,
    ) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.try_wait() {
            return Some(status);
        }
        self.signal(signal);
        let start = std::time::Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(status)) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_and_reap();
        None
    }

    /// Waits (at most `limit`, like [`Spawned::wait_within`]) and returns the exit status
    /// with all the child wrote to its piped stdout and stderr. The pipes are read while it
    /// runs, so a child that writes a lot cannot block on a full pipe.
    pub fn output_within(mut self, limit: Duration) -> std::process::Output {
        fn drain(
            pipe: Option<impl std::io::Read + Send + 'static>,
        ) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        }
        let stdout = drain(self.stdout.take());
        let stderr = drain(self.stderr.take());
        let status = self.wait_within(limit);
        std::process::Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }

    fn kill_and_reap(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl std::ops::Deref for Spawned {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.child.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.child.as_mut().unwrap()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && !matches!(child.try_wait(), Ok(Some(_)))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `command` with `stdin` as its input and piped output, to its end (bounded by
/// `limit`, else killed and the test fails).
pub fn run_with_input(
    command: &mut std::process::Command,
    stdin: &str,
    limit: Duration,
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Spawned::new(
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut input = child.stdin.take().unwrap();
    // A child that ends before reading all of it closes the pipe: not an error here.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.output_within(limit)
}
