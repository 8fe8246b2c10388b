//! The POP3 client machine.
