//! The serving layer: the warehouse the dbt models are built in.
//!
//! `redshift` prepares Redshift (external schema over the Glue silver database, serving and BI
//! schemas, the analysts role and its grants) through the Redshift Data API (`data_api`),
//! idempotently. `warehouse` reads it back for the run report's charts.

pub mod data_api;
pub mod redshift;
pub mod warehouse;
