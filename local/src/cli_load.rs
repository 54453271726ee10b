//! `deftunes load-songs`: the generated `deftunes.songs` into any PostgreSQL (an RDS instance of
//! a fresh account, for the `api-emulator` demo source), so that songs-extract finds the songs
//! the emulated sessions refer to.
//!
//! The connection is songs-extract's: the `PG_*` variables of its README (`PG_SSLMODE` defaults
//! to `require`, the password comes from `PG_PASSWORD` or `PG_SECRET_ARN`). The table is
//! replaced in one transaction, so a rerun leaves exactly the same rows. Rows that the given
//! seed and scale did not generate are not dropped without `--replace`.

use anyhow::{bail, Context, Result};
use deftunes::config::{PgConfig, ProcessEnv};
use deftunes::extract::songs;
use deftunes_local::{pg, Dataset, Song};
use tokio_postgres::Client;

use crate::DataArgs;

pub async fn load_songs(data: &DataArgs, replace: bool) -> Result<()> {
    let cfg = PgConfig::from_env(&ProcessEnv)?;
    let target = cfg.target();
    let secrets = songs::secrets_client(&cfg.password).await;
    let password = songs::resolve_password(&cfg.password, secrets.as_ref()).await?;
    let client = songs::connect(&cfg, password.as_deref()).await?;

    let generated = Dataset::generate_songs(data.seed, data.songs);
    if !replace {
        let foreign = foreign_rows(&client, &generated)
            .await
            .with_context(|| format!("checking deftunes.songs at {target} (or pass --replace)"))?;
        if foreign > 0 {
            bail!(
                "deftunes.songs at {target} holds {foreign} rows that --seed {} --songs {} does not \
                 generate; pass --replace to drop them",
                data.seed,
                data.songs
            );
        }
    }
    let loaded = pg::load_songs(&client, &generated)
        .await
        .with_context(|| format!("loading deftunes.songs at {target}"))?;
    println!(
        "Loaded {loaded} songs (seed {}) into deftunes.songs at {target}.",
        data.seed
    );
    Ok(())
}

/// Rows of `deftunes.songs` that loading `songs` would drop (0 when the table does not exist).
async fn foreign_rows(client: &Client, songs: &[Song]) -> Result<i64> {
    let exists: bool = client
        .query_one("SELECT to_regclass('deftunes.songs') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(0);
    }
    let ids: Vec<&str> = songs.iter().map(|s| s.track_id.as_str()).collect();
    let row = client
        .query_one(
            "SELECT count(*) FROM deftunes.songs WHERE track_id IS NULL OR NOT (track_id = ANY($1))",
            &[&ids],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// `deftunes load-classicmodels`: the generated shop database into the MySQL of the `MYSQL_*`
/// variables (songs-extract's own connection settings and code).
pub async fn load_classicmodels(
    seed: u64,
    scale: usize,
    until: Option<chrono::NaiveDate>,
    append: bool,
) -> Result<()> {
    use deftunes::config::{DbConfig, SqlEngine};
    use deftunes_local::classicmodels::{self, ClassicModels, ClassicScale};
    let cfg = DbConfig::from_env_for(&ProcessEnv, SqlEngine::Mysql)?;
    let target = cfg.target();
    let secrets = songs::secrets_client(&cfg.password).await;
    let password = songs::resolve_password(&cfg.password, secrets.as_ref()).await?;
    let mut conn = deftunes::extract::mysql::connect(&cfg, password.as_deref()).await?;
    let data = ClassicModels::generate(seed, &ClassicScale::times(scale));
    let counts = classicmodels::load(&mut conn, &data, until, !append)
        .await
        .with_context(|| format!("loading classicmodels at {target}"))?;
    println!("Loaded classicmodels (seed {seed}, scale {scale}) at {target}:");
    for (table, rows) in &counts.tables {
        println!("  {table:<14} {rows:>8}");
    }
    Ok(())
}
