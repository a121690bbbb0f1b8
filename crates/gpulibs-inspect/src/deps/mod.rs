//! Dynamic dependencies of an ELF library, resolved the way the dynamic loader would.
