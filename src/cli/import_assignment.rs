//! `mailwire import-assignment SRC DATA`: copies the mail server assignment's layout
//! (`User.txt`, `<user>/MyMailBox.txt`) into a data directory (the work is
//! [`crate::store::import_assignment`]'s).

use std::path::PathBuf;

use crate::store;

/// Arguments of `mailwire import-assignment`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Folder holding User.txt and one folder per user.
    pub src: PathBuf,
    /// Data directory to create or add to.
    pub data: PathBuf,
}

/// Runs `mailwire import-assignment`: imports, then says how many users and messages came
/// in and what was skipped.
pub fn run_import(args: ImportArgs) -> Result<(), String> {
    let ImportArgs { src, data } = args;
    let report = store::import_assignment(&src, &data).map_err(|e| e.to_string())?;
    println!(
        "imported {} user(s) and {} message(s) from {} into {}",
        report.users,
        report.messages,
        src.display(),
        data.display()
    );
    for w in &report.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
