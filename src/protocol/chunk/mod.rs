//! SCAFFOLD: filled in by the protocol core work.
