//! POP3 (RFC 1939, RFC 2449): commands, replies and the server machine.
