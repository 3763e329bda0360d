//! The pyzor client (work in progress).
