//! DeFtunes pipeline logic shared by every Lambda and by the local `deftunes` tool.
//!
//! Modules follow the pipeline's stages; adapters for the outside world (the lake, sources) are
//! enums with an AWS and a local variant, chosen by configuration.

pub mod config;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod pipeline;
pub mod run_control;
pub mod serving;
pub mod storage;
pub mod telemetry;
pub mod transform;
pub mod window;

pub use error::{Error, Result};
