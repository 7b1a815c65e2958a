//! Portcullis: an authentication gateway.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(rust_2018_idioms)]

pub mod access;
pub mod config;
pub mod identity;
