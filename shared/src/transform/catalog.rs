//! The Iceberg catalog: AWS Glue in AWS, SQLite locally, the same code above it.
//!
//! Exactly-once commits rest on [`CommitGuard`]: every commit attempt re-checks, against the
//! table as the catalog sees it at that moment, that no snapshot already records the landing
//! object, and that no snapshot added since the identity check appended any of the staged rows.
//! Combined with the catalog's compare-and-swap (SQL `UPDATE ... WHERE metadata_location = ?`,
//! Glue `VersionId`) and the append's `RefSnapshotIdMatch` requirement, two invocations racing on
//! the same object, or on objects holding the same records, append each row once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::io::{LocalFsStorageFactory, StorageFactory};
use iceberg::spec::Snapshot;
use iceberg::table::Table;
use iceberg::{
    Catalog, CatalogBuilder, Namespace, NamespaceIdent, TableCommit, TableCreation, TableIdent,
};
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;

use super::identity::{data_files_at, read_added};
use super::tables::TableDef;
use crate::config::{parse_or, required, Env};
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::storage::LakeUri;

pub const PROP_SOURCE_KEY: &str = "deftunes.source-key";
pub const PROP_SOURCE_VERSION: &str = "deftunes.source-version";
pub const PROP_OUTCOME: &str = "deftunes.outcome";
/// A commit attempt's own id: finding it in a snapshot proves the attempt landed.
pub const PROP_COMMIT_ID: &str = "deftunes.commit-id";

/// The name the SQL catalog files its tables under (`iceberg_tables.catalog_name`).
const SQL_CATALOG_NAME: &str = "deftunes";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogKind {
    /// SQLite (or any sqlx URL) catalog: the local mode.
    Sql { uri: String },
    /// AWS Glue Data Catalog.
    Glue { catalog_id: Option<String> },
}

/// Where a pipeline's tables live, as the transform function reads it from the environment
/// (`LAKE_URI`, `CATALOG`, `CATALOG_URI`, `GLUE_CATALOG_ID`, `ICEBERG_WAREHOUSE`,
/// `ICEBERG_NAMESPACE`, `S3_FORCE_PATH_STYLE`); every function that reads the tables reads this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogConfig {
    pub lake_uri: String,
    pub catalog: CatalogKind,
    /// Where table data and metadata are written (`<LAKE_URI>/transform_zone` by default).
    pub warehouse: String,
    /// The spec's namespace, unless a deployment keeps its tables elsewhere.
    pub namespace: String,
    pub s3_force_path_style: bool,
}

impl CatalogConfig {
    pub fn from_env(env: &dyn Env, pipeline: &Pipeline) -> Result<Self> {
        let lake_uri = required(env, "LAKE_URI")?;
        let catalog = match parse_or(env, "CATALOG", "sql".to_string())?.as_str() {
            "sql" => CatalogKind::Sql {
                uri: required(env, "CATALOG_URI")?,
            },
            "glue" => CatalogKind::Glue {
                catalog_id: env.var("GLUE_CATALOG_ID"),
            },
            other => {
                return Err(Error::Configuration(format!(
                    "CATALOG={other:?}: expected \"sql\" or \"glue\""
                )))
            }
        };
        let warehouse = match env.var("ICEBERG_WAREHOUSE") {
            Some(w) => w,
            None => match LakeUri::parse(&lake_uri)? {
                LakeUri::S3 { bucket, prefix } if prefix.is_empty() => {
                    format!("s3://{bucket}/transform_zone")
                }
                LakeUri::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/transform_zone"),
                LakeUri::Local(p) => {
                    let abs = std::path::absolute(&p)
                        .map_err(|e| Error::Configuration(format!("LAKE_URI {lake_uri}: {e}")))?;
                    format!("file://{}/transform_zone", abs.display())
                }
            },
        };
        Ok(CatalogConfig {
            lake_uri,
            catalog,
            warehouse,
            namespace: parse_or(env, "ICEBERG_NAMESPACE", pipeline.spec.namespace.clone())?,
            s3_force_path_style: parse_or(env, "S3_FORCE_PATH_STYLE", false)?,
        })
    }
}

/// Rows in the table's current snapshot (its summary's `total-records`; 0 before the first).
pub fn current_rows(table: &Table) -> u64 {
    table
        .metadata()
        .current_snapshot()
        .and_then(|s| {
            s.summary()
                .additional_properties
                .get("total-records")
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Builds the catalog; S3 and Glue endpoints follow the SDK's standard `AWS_ENDPOINT_URL*`
/// settings so emulators work.
pub async fn build_catalog(
    kind: &CatalogKind,
    warehouse: &str,
    env: &dyn Env,
    path_style: bool,
) -> Result<Arc<dyn Catalog>> {
    let factory = storage_factory(warehouse);
    let mut props = HashMap::new();
    props.insert("warehouse".to_string(), warehouse.to_string());
    let s3_endpoint = env
        .var("AWS_ENDPOINT_URL_S3")
        .or_else(|| env.var("AWS_ENDPOINT_URL"));
    if let Some(ep) = &s3_endpoint {
        props.insert("s3.endpoint".to_string(), ep.clone());
    }
    if path_style {
        props.insert("s3.path-style-access".to_string(), "true".to_string());
    }
    if let Some(region) = env
        .var("AWS_REGION")
        .or_else(|| env.var("AWS_DEFAULT_REGION"))
    {
        props.insert("s3.region".to_string(), region.clone());
        props.insert("region_name".to_string(), region);
    }
    match kind {
        CatalogKind::Sql { uri } => {
            if let Some(path) = uri.strip_prefix("sqlite:") {
                let path = path
                    .trim_start_matches("//")
                    .split('?')
                    .next()
                    .unwrap_or_default();
                if let Some(parent) = std::path::Path::new(path)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::Configuration(format!(
                            "CATALOG_URI {uri}: cannot create {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
            }
            props.insert("uri".to_string(), uri.clone());
            props.insert(
                "sql_bind_style".to_string(),
                iceberg_catalog_sql::SqlBindStyle::QMark.to_string(),
            );
            let c = iceberg_catalog_sql::SqlCatalogBuilder::default()
                .with_storage_factory(factory)
                .load(SQL_CATALOG_NAME, props)
                .await
                .map_err(|e| Error::Configuration(format!("SQL catalog {uri}: {e:#}")))?;
            Ok(Arc::new(c))
        }
        CatalogKind::Glue { catalog_id } => {
            if let Some(id) = catalog_id {
                props.insert("catalog_id".to_string(), id.clone());
            }
            // A custom Glue endpoint (emulators); in AWS this stays unset.
            glue_endpoint_props(env, &mut props)?;
            let c = iceberg_catalog_glue::GlueCatalogBuilder::default()
                .with_storage_factory(factory)
                .load("glue", props)
                .await
                .map_err(|e| Error::Configuration(format!("Glue catalog: {e:#}")))?;
            Ok(Arc::new(c))
        }
    }
}

/// The tables' file storage. A local warehouse is read and written with `std::fs` (iceberg's
/// `LocalFsStorage`; its calls block a runtime worker briefly, which only the local stack sees):
/// opendal's file service builds its shared HTTP client on first use, and that client loads the
/// system's CA certificates, 29% of a small object's CPU (process start included, perf).
fn storage_factory(warehouse: &str) -> Arc<dyn StorageFactory> {
    let local = warehouse.starts_with("file:") || !warehouse.contains("://");
    if local {
        Arc::new(LocalFsStorageFactory)
    } else {
        Arc::new(OpenDalResolvingStorageFactory::new())
    }
}

/// A custom Glue endpoint (emulators) becomes the catalog's `uri`; in AWS it stays unset. The Glue
/// catalog would also send S3 traffic to that `uri` when no S3 endpoint is set, so S3 is then
/// pinned to its regional AWS endpoint: a Glue-only override stays Glue-only.
fn glue_endpoint_props(env: &dyn Env, props: &mut HashMap<String, String>) -> Result<()> {
    let Some(ep) = env
        .var("AWS_ENDPOINT_URL_GLUE")
        .or_else(|| env.var("AWS_ENDPOINT_URL"))
    else {
        return Ok(());
    };
    if !props.contains_key("s3.endpoint") {
        let region = props.get("s3.region").cloned().ok_or_else(|| {
            Error::Configuration(
                "AWS_ENDPOINT_URL_GLUE is set without an S3 endpoint: set AWS_REGION too, so S3 stays on AWS".into(),
            )
        })?;
        props.insert(
            "s3.endpoint".to_string(),
            format!("https://s3.{region}.amazonaws.com"),
        );
    }
    props.insert("uri".to_string(), ep);
    Ok(())
}

/// Loads the table, creating the namespace and table on first use (concurrent creators race
/// harmlessly: the loser loads what the winner created).
pub async fn ensure_table(
    catalog: &dyn Catalog,
    backend: &CatalogKind,
    namespace: &str,
    kind: &TableDef,
) -> Result<Table> {
    let ns = NamespaceIdent::new(namespace.to_string());
    let ident = TableIdent::new(ns.clone(), kind.name().to_string());
    if let Ok(t) = catalog.load_table(&ident).await {
        return evolve_to_spec(catalog, backend, t, kind).await;
    }
    if !catalog.namespace_exists(&ns).await? {
        if let Err(e) = catalog.create_namespace(&ns, HashMap::new()).await {
            if !catalog.namespace_exists(&ns).await? {
                return Err(e.into());
            }
        }
    }
    let creation = TableCreation::builder()
        .name(kind.name().to_string())
        .schema(kind.schema().clone())
        .partition_spec(kind.partition_spec().clone())
        .properties([
            ("write.format.default".to_string(), "parquet".to_string()),
            (
                "write.parquet.compression-codec".to_string(),
                "zstd".to_string(),
            ),
        ])
        .build();
    match catalog.create_table(&ns, creation).await {
        Ok(t) => {
            tracing::info!(table = %ident, "created table");
            Ok(t)
        }
        Err(create_err) => catalog
            .load_table(&ident)
            .await
            .map_err(|_| create_err.into()),
    }
}

/// Brings a loaded table to its spec's schema: columns the spec added are added (optional:
/// older rows read them as null), columns it dropped are dropped, in one schema update; what
/// Iceberg cannot change in place is refused ([`plan_schema_change`]). Concurrent transforms may
/// race to make the same change: the loser reloads and finds nothing left to do.
async fn evolve_to_spec(
    catalog: &dyn Catalog,
    backend: &CatalogKind,
    table: Table,
    kind: &TableDef,
) -> Result<Table> {
    let desired = kind.schema();
    if same_columns(table.metadata().current_schema(), desired) {
        return Ok(table);
    }
    let ident = table.identifier().clone();
    match evolve_schema(catalog, backend, table, desired).await {
        Ok((t, change)) => {
            tracing::info!(table = %ident, added = ?change.add, dropped = ?change.drop, widened = ?change.widen, "evolved the table's schema to its spec");
            Ok(t)
        }
        Err(e) if e.is_retryable() => {
            let t = catalog.load_table(&ident).await?;
            if same_columns(t.metadata().current_schema(), desired) {
                Ok(t)
            } else {
                Err(e)
            }
        }
        Err(e) => Err(e),
    }
}

/// The same column names, types and requiredness, whatever their ids.
fn same_columns(a: &iceberg::spec::Schema, b: &iceberg::spec::Schema) -> bool {
    let cols = |s: &iceberg::spec::Schema| {
        let mut v: Vec<(String, String, bool)> = s
            .as_struct()
            .fields()
            .iter()
            .map(|f| (f.name.clone(), f.field_type.to_string(), f.required))
            .collect();
        v.sort();
        v
    };
    cols(a) == cols(b)
}

/// What evolving a table's schema to a desired one takes: columns to add (optional, by name and
/// type) and columns to drop. Columns are matched by name.
#[derive(Debug, Default, PartialEq)]
pub struct SchemaChange {
    pub add: Vec<(String, iceberg::spec::PrimitiveType)>,
    pub drop: Vec<String>,
    /// Columns whose type widens in place (int to long, float to double, a decimal's precision),
    /// with their new type: files written before keep the narrower type and read promoted.
    pub widen: Vec<(String, iceberg::spec::PrimitiveType)>,
}

/// Plans the evolution of `current` to `desired`, refusing what Iceberg cannot do in place: a
/// required column added to rows that have no value, a dropped key or partition column, a type
/// change other than Iceberg's widenings (int to long, float to double, a larger decimal
/// precision at the same scale), which are planned in `widen`.
pub fn plan_schema_change(
    table: &str,
    current: &iceberg::spec::Schema,
    partition_sources: &[i32],
    desired: &iceberg::spec::Schema,
) -> Result<SchemaChange> {
    use iceberg::spec::{PrimitiveType as P, Type};
    let refuse = |what: String| Err(Error::Catalog(format!("table {table}: {what}")));
    let mut change = SchemaChange::default();
    for want in desired.as_struct().fields() {
        match current.field_by_name(&want.name) {
            None if want.required => {
                return refuse(format!(
                    "cannot add the required column {} (existing rows have no value for it)",
                    want.name
                ))
            }
            None => match want.field_type.as_ref() {
                Type::Primitive(p) => change.add.push((want.name.clone(), p.clone())),
                other => return refuse(format!("column {}: {other} is not supported", want.name)),
            },
            Some(have) if have.field_type == want.field_type => {}
            Some(have) => {
                let widening = matches!(
                    (have.field_type.as_ref(), want.field_type.as_ref()),
                    (Type::Primitive(P::Int), Type::Primitive(P::Long))
                        | (Type::Primitive(P::Float), Type::Primitive(P::Double))
                ) || matches!(
                    (have.field_type.as_ref(), want.field_type.as_ref()),
                    (
                        Type::Primitive(P::Decimal { precision: p1, scale: s1 }),
                        Type::Primitive(P::Decimal { precision: p2, scale: s2 })
                    ) if s1 == s2 && p2 > p1
                );
                match want.field_type.as_ref() {
                    Type::Primitive(p) if widening => {
                        change.widen.push((want.name.clone(), p.clone()))
                    }
                    _ => {
                        return refuse(format!(
                            "column {}: Iceberg cannot change {} to {} in place (only int to long, \
                             float to double and a larger decimal precision)",
                            want.name, have.field_type, want.field_type
                        ))
                    }
                }
            }
        }
    }
    let keys: Vec<i32> = current.identifier_field_ids().collect();
    for have in current.as_struct().fields() {
        if desired.field_by_name(&have.name).is_some() {
            continue;
        }
        if keys.contains(&have.id) || partition_sources.contains(&have.id) {
            return refuse(format!(
                "cannot drop {}: it is part of the natural key or the partitioning",
                have.name
            ));
        }
        change.drop.push(have.name.clone());
    }
    Ok(change)
}

/// Evolves `table` in place to `desired` (see [`plan_schema_change`]): added and dropped columns
/// in one schema update, widened types in a second ([`widen_columns`]); older snapshots and rows
/// stay readable (added columns read as null, narrower values promoted).
pub async fn evolve_schema(
    catalog: &dyn Catalog,
    backend: &CatalogKind,
    table: Table,
    desired: &iceberg::spec::Schema,
) -> Result<(Table, SchemaChange)> {
    let metadata = table.metadata();
    let sources: Vec<i32> = metadata
        .default_partition_spec()
        .fields()
        .iter()
        .map(|f| f.source_id)
        .collect();
    let name = table.identifier().to_string();
    let change = plan_schema_change(&name, metadata.current_schema(), &sources, desired)?;
    if change == SchemaChange::default() {
        return Ok((table, change));
    }
    let table = if change.add.is_empty() && change.drop.is_empty() {
        table
    } else {
        add_and_drop(catalog, table, &change).await?
    };
    let table = if change.widen.is_empty() {
        table
    } else {
        widen_columns(catalog, backend, table, &change.widen).await?
    };
    tracing::info!(table = %name, added = ?change.add, dropped = ?change.drop, widened = ?change.widen, "schema evolved");
    Ok((table, change))
}

async fn add_and_drop(catalog: &dyn Catalog, table: Table, change: &SchemaChange) -> Result<Table> {
    use iceberg::transaction::{ApplyTransactionAction, Transaction};
    let tx = Transaction::new(&table);
    let mut update = tx.update_schema();
    for (column, ty) in &change.add {
        update = update.add_column(iceberg::transaction::AddColumn::optional(
            column,
            iceberg::spec::Type::Primitive(ty.clone()),
        ));
    }
    for column in &change.drop {
        update = update.delete_column(column);
    }
    Ok(update.apply(tx)?.commit(catalog).await?)
}

/// Widens column types in place. iceberg-rust 0.10's transactions cannot change a type, so this
/// does what its catalogs do for any commit, with a schema it builds itself: the current
/// metadata plus a new current schema (same field ids, wider types) is written as the next
/// metadata file, and the table's pointer is swapped to it with the catalog's compare-and-swap
/// (SQL `UPDATE ... WHERE metadata_location = <current>`, Glue `VersionId`). A concurrent commit
/// makes the swap fail as a conflict, retryable: the next attempt starts from the new head. The
/// written file stays unreferenced then, for the orphan-file maintenance.
pub async fn widen_columns(
    catalog: &dyn Catalog,
    backend: &CatalogKind,
    table: Table,
    widen: &[(String, iceberg::spec::PrimitiveType)],
) -> Result<Table> {
    use iceberg::spec::{NestedField, Schema, TableMetadataBuilder, Type};
    use iceberg::MetadataLocation;
    use std::str::FromStr;
    let metadata = table.metadata();
    let current = metadata.current_schema();
    let fields: Vec<Arc<NestedField>> = current
        .as_struct()
        .fields()
        .iter()
        .map(|f| match widen.iter().find(|(name, _)| *name == f.name) {
            Some((_, ty)) => {
                let mut f = f.as_ref().clone();
                f.field_type = Box::new(Type::Primitive(ty.clone()));
                Arc::new(f)
            }
            None => f.clone(),
        })
        .collect();
    let schema = Schema::builder()
        .with_fields(fields)
        .with_identifier_field_ids(current.identifier_field_ids())
        .build()?;
    let location = table
        .metadata_location()
        .ok_or_else(|| {
            Error::Catalog(format!(
                "table {}: no metadata location",
                table.identifier()
            ))
        })?
        .to_string();
    let next = MetadataLocation::from_str(&location)?.with_next_version();
    let built = TableMetadataBuilder::new_from_metadata(metadata.clone(), Some(location.clone()))
        .add_current_schema(schema)?
        .build()?;
    built.metadata.write_to(table.file_io(), &next).await?;
    let next = next.to_string();
    let ident = table.identifier();
    match backend {
        CatalogKind::Sql { uri } => swap_sql(uri, ident, &location, &next).await?,
        CatalogKind::Glue { catalog_id } => {
            swap_glue(catalog_id.as_deref(), ident, &location, &next, widen).await?
        }
    }
    Ok(catalog.load_table(ident).await?)
}

fn conflict(ident: &TableIdent) -> Error {
    Error::CommitConflict(format!(
        "table {ident} changed while its column types were widened; the next attempt starts from its new metadata"
    ))
}

/// Points the SQL catalog's row of `ident` at `next` if it still points at `current`.
async fn swap_sql(uri: &str, ident: &TableIdent, current: &str, next: &str) -> Result<()> {
    sqlx::any::install_default_drivers();
    let unavailable = |e: sqlx::Error| Error::CatalogUnavailable(format!("SQL catalog {uri}: {e}"));
    let pool = sqlx::AnyPool::connect(uri).await.map_err(unavailable)?;
    let done = sqlx::query(
        "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
         WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ?",
    )
    .bind(next)
    .bind(current)
    .bind(SQL_CATALOG_NAME)
    .bind(ident.namespace().join("."))
    .bind(ident.name())
    .bind(current)
    .execute(&pool)
    .await
    .map_err(unavailable)?;
    pool.close().await;
    if done.rows_affected() == 0 {
        return Err(conflict(ident));
    }
    Ok(())
}

/// Points the Glue table `ident` at `next` if it still points at `current`, with its `VersionId`
/// as the lock; the Glue columns of widened types follow (Athena and Spectrum list them).
async fn swap_glue(
    catalog_id: Option<&str>,
    ident: &TableIdent,
    current: &str,
    next: &str,
    widen: &[(String, iceberg::spec::PrimitiveType)],
) -> Result<()> {
    use aws_sdk_glue::types::TableInput;
    let client = aws_sdk_glue::Client::new(&aws_config::load_from_env().await);
    let database = ident.namespace().join(".");
    let what = format!("Glue table {database}.{}", ident.name());
    let sdk = |e: String, transient: bool| {
        if transient {
            Error::CatalogUnavailable(format!("{what}: {e}"))
        } else {
            Error::Catalog(format!("{what}: {e}"))
        }
    };
    let got = client
        .get_table()
        .set_catalog_id(catalog_id.map(str::to_string))
        .database_name(&database)
        .name(ident.name())
        .send()
        .await
        .map_err(|e| {
            let (transient, msg) = crate::error::aws_sdk_failure(&e, &[]);
            sdk(msg, transient)
        })?;
    let glue = got
        .table
        .ok_or_else(|| Error::Catalog(format!("{what}: GetTable returned no table")))?;
    let mut parameters = glue.parameters.clone().unwrap_or_default();
    if parameters.get("metadata_location").map(String::as_str) != Some(current) {
        return Err(conflict(ident));
    }
    parameters.insert("metadata_location".into(), next.to_string());
    parameters.insert("previous_metadata_location".into(), current.to_string());
    let storage = glue.storage_descriptor.clone().map(|mut sd| {
        if let Some(columns) = sd.columns.as_mut() {
            for c in columns.iter_mut() {
                if let Some((_, ty)) = widen.iter().find(|(n, _)| *n == c.name) {
                    c.r#type = Some(glue_type(ty));
                }
            }
        }
        sd
    });
    let input = TableInput::builder()
        .name(ident.name())
        .set_description(glue.description.clone())
        .set_table_type(glue.table_type.clone())
        .set_storage_descriptor(storage)
        .set_partition_keys(glue.partition_keys.clone())
        .set_parameters(Some(parameters))
        .build()
        .map_err(|e| Error::Catalog(format!("{what}: {e}")))?;
    client
        .update_table()
        .set_catalog_id(catalog_id.map(str::to_string))
        .database_name(&database)
        .table_input(input)
        .set_version_id(glue.version_id.clone())
        .set_skip_archive(Some(true))
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_concurrent_modification_exception())
            {
                return conflict(ident);
            }
            let (transient, msg) = crate::error::aws_sdk_failure(&e, &[]);
            sdk(msg, transient)
        })?;
    Ok(())
}

/// The Hive type Glue lists for an Iceberg primitive (as iceberg-catalog-glue writes it).
fn glue_type(ty: &iceberg::spec::PrimitiveType) -> String {
    use iceberg::spec::PrimitiveType as P;
    match ty {
        P::Long => "bigint".into(),
        P::Int => "int".into(),
        P::Double => "double".into(),
        P::Float => "float".into(),
        P::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        other => other.to_string(),
    }
}

/// The snapshot that recorded `key` at `version`, if any.
pub fn find_commit<'t>(table: &'t Table, key: &str, version: &str) -> Option<&'t Arc<Snapshot>> {
    table.metadata().snapshots().find(|s| {
        let p = &s.summary().additional_properties;
        p.get(PROP_SOURCE_KEY).map(String::as_str) == Some(key)
            && p.get(PROP_SOURCE_VERSION).map(String::as_str) == Some(version)
    })
}

/// The snapshot one of `attempt_ids` committed, if any.
pub fn find_own_commit(table: &Table, attempt_ids: &[String]) -> Option<i64> {
    table
        .metadata()
        .snapshots()
        .find(|s| {
            s.summary()
                .additional_properties
                .get(PROP_COMMIT_ID)
                .is_some_and(|id| attempt_ids.contains(id))
        })
        .map(|s| s.snapshot_id())
}

/// Message of the error a guarded commit fails with when someone else committed first.
pub const ALREADY_COMMITTED: &str = "landing object already committed by another invocation";
const ROWS_APPENDED_MEANWHILE: &str = "rows of this object were appended by a concurrent commit";
const OWN_COMMIT_LANDED: &str = "this commit already landed";

/// Whether a failed commit attempt is known not to have reached the catalog's table update: the
/// guard refused it, or the catalog's compare-and-swap did. Any other failure (a timeout, a 5xx)
/// leaves the outcome unknown, and the staged files must then be left to the orphan-file
/// maintenance: the update may still land and reference them.
pub fn refused_before_update(e: &iceberg::Error) -> bool {
    e.kind() == iceberg::ErrorKind::CatalogCommitConflicts
        || [
            ALREADY_COMMITTED,
            ROWS_APPENDED_MEANWHILE,
            OWN_COMMIT_LANDED,
        ]
        .iter()
        .any(|m| e.message().contains(m))
}

/// Refuses a commit when the table already records (key, version), already holds one of our
/// attempts, or gained some of the staged rows since `checked` (used as [`Hooked`]'s hook).
pub struct CommitGuard<'a> {
    pub kind: &'a TableDef,
    pub key: &'a str,
    pub version: &'a str,
    pub attempt_ids: &'a [String],
    /// Hashes of the staged rows.
    pub appended: &'a super::identity::Appended,
    /// The snapshot up to which the table is known to hold none of the staged rows.
    pub checked: &'a tokio::sync::Mutex<Option<i64>>,
    /// Staged rows found appended by a concurrent commit.
    pub overlap: &'a std::sync::Mutex<HashSet<u128>>,
}

impl CommitGuard<'_> {
    /// Reads what the snapshots after `checked` added; records and refuses overlapping rows.
    async fn check_new_rows(&self, current: &Table) -> iceberg::Result<()> {
        let head = current.metadata().current_snapshot_id();
        let mut checked = self.checked.lock().await;
        if head == *checked {
            return Ok(());
        }
        // Keeps a transient failure (a throttled read) retryable for the commit loop.
        let as_iceberg = |e: Error| {
            iceberg::Error::new(iceberg::ErrorKind::Unexpected, e.to_string())
                .with_retryable(e.is_retryable())
        };
        // An expired base snapshot: every file counts as new (slower, still exact).
        let before = match *checked {
            Some(id) if current.metadata().snapshot_by_id(id).is_some() => {
                data_files_at(current, Some(id)).await.map_err(as_iceberg)?
            }
            _ => HashSet::new(),
        };
        let held = read_added(current, self.kind, &before)
            .await
            .map_err(as_iceberg)?;
        let overlap: HashSet<u128> = self
            .appended
            .hashes()
            .filter(|&h| held.contains_hash(h))
            .collect();
        if !overlap.is_empty() {
            *self.overlap.lock().unwrap_or_else(|p| p.into_inner()) = overlap;
            return Err(iceberg::Error::new(
                iceberg::ErrorKind::DataInvalid,
                ROWS_APPENDED_MEANWHILE,
            ));
        }
        *checked = head;
        Ok(())
    }
}

impl std::fmt::Debug for CommitGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitGuard")
            .field("key", &self.key)
            .finish()
    }
}

#[async_trait]
impl UpdateHook for CommitGuard<'_> {
    async fn update_table(
        &self,
        inner: &dyn Catalog,
        commit: TableCommit,
    ) -> iceberg::Result<Table> {
        let current = inner.load_table(commit.identifier()).await?;
        if find_own_commit(&current, self.attempt_ids).is_some() {
            return Err(iceberg::Error::new(
                iceberg::ErrorKind::DataInvalid,
                OWN_COMMIT_LANDED,
            ));
        }
        if find_commit(&current, self.key, self.version).is_some() {
            return Err(iceberg::Error::new(
                iceberg::ErrorKind::DataInvalid,
                ALREADY_COMMITTED,
            ));
        }
        self.check_new_rows(&current).await?;
        inner.update_table(commit).await
    }
}

/// What a [`Hooked`] catalog does instead of the inner catalog's `update_table`.
#[async_trait]
pub trait UpdateHook: std::fmt::Debug + Send + Sync {
    async fn update_table(
        &self,
        inner: &dyn Catalog,
        commit: TableCommit,
    ) -> iceberg::Result<Table>;
}

/// Access to a wrapped catalog, borrowed or shared.
pub trait CatalogRef: std::fmt::Debug + Send + Sync {
    fn catalog(&self) -> &dyn Catalog;
}

impl CatalogRef for &dyn Catalog {
    fn catalog(&self) -> &dyn Catalog {
        *self
    }
}

impl CatalogRef for Arc<dyn Catalog> {
    fn catalog(&self) -> &dyn Catalog {
        self.as_ref()
    }
}

/// A catalog that passes everything to `inner` but `update_table`, which goes through `hook`
/// (the commit guard; fault injection in tests).
#[derive(Debug)]
pub struct Hooked<C, H> {
    pub inner: C,
    pub hook: H,
}

#[async_trait]
impl<C: CatalogRef, H: UpdateHook> Catalog for Hooked<C, H> {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> iceberg::Result<Vec<NamespaceIdent>> {
        self.inner.catalog().list_namespaces(parent).await
    }
    async fn create_namespace(
        &self,
        ns: &NamespaceIdent,
        props: HashMap<String, String>,
    ) -> iceberg::Result<Namespace> {
        self.inner.catalog().create_namespace(ns, props).await
    }
    async fn get_namespace(&self, ns: &NamespaceIdent) -> iceberg::Result<Namespace> {
        self.inner.catalog().get_namespace(ns).await
    }
    async fn namespace_exists(&self, ns: &NamespaceIdent) -> iceberg::Result<bool> {
        self.inner.catalog().namespace_exists(ns).await
    }
    async fn update_namespace(
        &self,
        ns: &NamespaceIdent,
        props: HashMap<String, String>,
    ) -> iceberg::Result<()> {
        self.inner.catalog().update_namespace(ns, props).await
    }
    async fn drop_namespace(&self, ns: &NamespaceIdent) -> iceberg::Result<()> {
        self.inner.catalog().drop_namespace(ns).await
    }
    async fn list_tables(&self, ns: &NamespaceIdent) -> iceberg::Result<Vec<TableIdent>> {
        self.inner.catalog().list_tables(ns).await
    }
    async fn create_table(
        &self,
        ns: &NamespaceIdent,
        creation: TableCreation,
    ) -> iceberg::Result<Table> {
        self.inner.catalog().create_table(ns, creation).await
    }
    async fn load_table(&self, t: &TableIdent) -> iceberg::Result<Table> {
        self.inner.catalog().load_table(t).await
    }
    async fn drop_table(&self, t: &TableIdent) -> iceberg::Result<()> {
        self.inner.catalog().drop_table(t).await
    }
    async fn purge_table(&self, t: &TableIdent) -> iceberg::Result<()> {
        self.inner.catalog().purge_table(t).await
    }
    async fn table_exists(&self, t: &TableIdent) -> iceberg::Result<bool> {
        self.inner.catalog().table_exists(t).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> iceberg::Result<()> {
        self.inner.catalog().rename_table(src, dest).await
    }
    async fn register_table(
        &self,
        t: &TableIdent,
        metadata_location: String,
    ) -> iceberg::Result<Table> {
        self.inner
            .catalog()
            .register_table(t, metadata_location)
            .await
    }
    async fn update_table(&self, commit: TableCommit) -> iceberg::Result<Table> {
        self.hook.update_table(self.inner.catalog(), commit).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::tables::{repo_tables, TableDef};
    use super::*;
    use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};

    fn def(name: &str) -> TableDef {
        repo_tables("deftunes").unwrap().get(name).unwrap().clone()
    }

    /// `kind`'s schema with `edit` applied to its fields (ids kept; new fields take fresh ids).
    fn edited(kind: TableDef, edit: impl FnOnce(&mut Vec<NestedField>)) -> Schema {
        let s = kind.schema().clone();
        let mut fields: Vec<NestedField> = s
            .as_struct()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        edit(&mut fields);
        let keys: Vec<i32> = s
            .identifier_field_ids()
            .filter(|id| fields.iter().any(|f| f.id == *id))
            .collect();
        Schema::builder()
            .with_fields(fields.into_iter().map(Arc::new))
            .with_identifier_field_ids(keys)
            .build()
            .unwrap()
    }

    fn plan(kind: TableDef, desired: &Schema) -> Result<SchemaChange> {
        let current = kind.schema().clone();
        let spec = kind.partition_spec().clone().bind(current.clone()).unwrap();
        let sources: Vec<i32> = spec.fields().iter().map(|f| f.source_id).collect();
        plan_schema_change(kind.name(), &current, &sources, desired)
    }

    #[test]
    fn schema_changes_add_optional_columns_and_drop_others() {
        let desired = edited(def("users"), |f| {
            f.retain(|c| c.name != "timezone");
            f.push(NestedField::optional(
                100,
                "email",
                Type::Primitive(PrimitiveType::String),
            ));
        });
        assert_eq!(
            plan(def("users"), &desired).unwrap(),
            SchemaChange {
                add: vec![("email".into(), PrimitiveType::String)],
                drop: vec!["timezone".into()],
                widen: vec![],
            }
        );
        let same = def("users").schema().clone();
        assert_eq!(plan(def("users"), &same).unwrap(), SchemaChange::default());
    }

    #[test]
    fn widening_types_is_planned_narrowing_is_refused() {
        let retype = |kind: TableDef, to: &[(&str, PrimitiveType)]| {
            edited(kind, |f| {
                for (column, ty) in to {
                    let c = f.iter_mut().find(|c| c.name == *column).unwrap();
                    *c.field_type = Type::Primitive(ty.clone());
                }
            })
        };
        let wider = retype(
            def("songs"),
            &[
                ("year", PrimitiveType::Long),
                ("duration", PrimitiveType::Double),
            ],
        );
        assert_eq!(
            plan(def("songs"), &wider).unwrap(),
            SchemaChange {
                widen: vec![
                    ("duration".into(), PrimitiveType::Double),
                    ("year".into(), PrimitiveType::Long),
                ],
                ..SchemaChange::default()
            }
        );
        // Back from the widened schema to the spec's: long to int would lose values.
        let e = plan_schema_change("songs", &wider, &[], def("songs").schema()).unwrap_err();
        assert!(
            e.to_string()
                .contains("column duration: Iceberg cannot change double to float in place"),
            "{e}"
        );
    }

    #[test]
    fn schema_changes_iceberg_cannot_make_in_place_are_refused_naming_the_column() {
        let retype = |kind: TableDef, column: &'static str, to: PrimitiveType| {
            edited(kind, |f| {
                let c = f.iter_mut().find(|c| c.name == column).unwrap();
                *c.field_type = Type::Primitive(to);
            })
        };
        let cases = [
            (
                def("users"),
                retype(def("users"), "user_name", PrimitiveType::Int),
                "column user_name: Iceberg cannot change string to int in place",
            ),
            (
                def("songs"),
                retype(def("songs"), "year", PrimitiveType::Float),
                "column year: Iceberg cannot change int to float in place",
            ),
            (
                def("users"),
                edited(def("users"), |f| f.retain(|c| c.name != "user_id")),
                "cannot drop user_id: it is part of the natural key",
            ),
            (
                def("sessions"),
                edited(def("sessions"), |f| {
                    f.retain(|c| c.name != "session_start_time")
                }),
                "cannot drop session_start_time",
            ),
            (
                def("users"),
                edited(def("users"), |f| {
                    f.push(NestedField::required(
                        100,
                        "email",
                        Type::Primitive(PrimitiveType::String),
                    ))
                }),
                "cannot add the required column email",
            ),
        ];
        for (kind, desired, what) in cases {
            let e = plan(kind, &desired).unwrap_err();
            assert_eq!(e.error_type(), "CatalogError");
            assert!(e.to_string().contains(what), "{e}");
        }
    }

    fn props_for(
        env: &[(&str, &str)],
        s3_endpoint: Option<&str>,
    ) -> Result<HashMap<String, String>> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut props = HashMap::from([("s3.region".to_string(), "eu-west-1".to_string())]);
        if let Some(ep) = s3_endpoint {
            props.insert("s3.endpoint".to_string(), ep.to_string());
        }
        glue_endpoint_props(&env, &mut props)?;
        Ok(props)
    }

    #[test]
    fn a_glue_only_endpoint_keeps_s3_on_aws() {
        let p = props_for(&[("AWS_ENDPOINT_URL_GLUE", "http://127.0.0.1:5000")], None).unwrap();
        assert_eq!(p["uri"], "http://127.0.0.1:5000");
        assert_eq!(p["s3.endpoint"], "https://s3.eu-west-1.amazonaws.com");
    }

    #[test]
    fn an_explicit_s3_endpoint_is_kept_and_aws_leaves_uri_unset() {
        let p = props_for(
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")],
            Some("http://127.0.0.1:5000"),
        )
        .unwrap();
        assert_eq!(p["uri"], "http://127.0.0.1:5000");
        assert_eq!(p["s3.endpoint"], "http://127.0.0.1:5000");
        let p = props_for(&[], None).unwrap();
        assert!(
            !p.contains_key("uri") && !p.contains_key("s3.endpoint"),
            "{p:?}"
        );
    }
}
