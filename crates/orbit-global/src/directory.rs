//! Mirrors the tenancy directory from the directory site (see the crate doc).
