//! The local DeFtunes stack as a library: a deterministic data generator ([`dataset`]), an HTTP
//! emulator of the DeFtunes purchases API ([`emulator`]) and a throwaway PostgreSQL holding
//! `deftunes.songs` ([`pg`]), and a deterministic generator of Sparkify raw song and event files
//! landed into a local lake ([`sparkify`]), and an HTTP emulator of a Spotify-style catalogue API
//! with OAuth2 client credentials, paging and epochs of changing data ([`spotify`]); the servers'
//! and helpers' child processes are stopped with the command that started them ([`child`]).

pub mod child;
pub mod classicmodels;
pub mod dataset;
pub mod emulator;
pub mod mariadb;
pub mod pg;
pub mod serve;
pub mod sparkify;
pub mod spotify;

pub use dataset::{Dataset, Scale, Session, SessionItem, Song, User};
pub use emulator::{Faults, RunningEmulator};
pub use pg::{LocalPostgres, PgError, PgHandle};
pub use spotify::{
    RunningSpotify, SpotifyConfig, SpotifyData, SpotifyEpoch, SpotifyFaults, SpotifyScale,
    SpotifyStats,
};
