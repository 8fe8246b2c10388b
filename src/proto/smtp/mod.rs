//! SMTP (RFC 5321): commands, replies and the server machine.
