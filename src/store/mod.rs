//! Users and Maildir mailboxes on disk.
