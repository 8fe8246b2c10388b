//! The mail client: drives the client machines over TCP; the console client; the raw console.
