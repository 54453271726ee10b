//! The local DeFtunes stack as a library: a deterministic data generator ([`dataset`]), an HTTP
//! emulator of the DeFtunes purchases API ([`emulator`]) and a throwaway PostgreSQL holding
//! `deftunes.songs` ([`pg`]), and a deterministic generator of Sparkify raw song and event files
//! landed into a local lake ([`sparkify`]).

pub mod classicmodels;
pub mod dataset;
pub mod emulator;
pub mod mariadb;
pub mod pg;
pub mod sparkify;

pub use dataset::{Dataset, Scale, Session, SessionItem, Song, User};
pub use emulator::{Faults, RunningEmulator};
pub use pg::{LocalPostgres, PgError, PgHandle};
