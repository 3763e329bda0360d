//! The pyzord server (work in progress).
