-- Artist popularity history: every version of each artist, oldest first, with its popularity and followers and the change of each from the artist's previous version (window functions over the Iceberg table's versions).
-- Rendered by Terraform (modules/pipeline_settings) with the pipeline's Glue database. Each row of the table is
-- a version: transform appends a record again only when it changed (or changed back), so consecutive versions
-- differ. Versions are ordered as dbt's staging models pick the latest one (ingest_on, then
-- processing_timestamp, then landing object); an artist's first version has no previous one (null changes).
SELECT
  artist_id,
  name,
  row_number() OVER (
    PARTITION BY artist_id
    ORDER BY ingest_on, processing_timestamp, source_object
  ) AS version_number,
  ingest_on,
  processing_timestamp,
  popularity,
  lag(popularity) OVER (
    PARTITION BY artist_id
    ORDER BY ingest_on, processing_timestamp, source_object
  ) AS previous_popularity,
  popularity - lag(popularity) OVER (
    PARTITION BY artist_id
    ORDER BY ingest_on, processing_timestamp, source_object
  ) AS popularity_change,
  followers,
  followers - lag(followers) OVER (
    PARTITION BY artist_id
    ORDER BY ingest_on, processing_timestamp, source_object
  ) AS followers_change
FROM "${database}"."artists"
ORDER BY artist_id, version_number
