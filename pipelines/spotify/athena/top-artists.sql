-- Top artists by playlist additions (the latest version of each addition), with each artist's latest popularity, followers and genre, from the Iceberg tables: additions, distinct playlists and tracks, and the last addition per artist.
-- Rendered by Terraform (modules/pipeline_settings) with the pipeline's Glue database. The tables keep every
-- version of a record: the latest one of each key counts (latest ingest_on, then processing_timestamp, then
-- landing object), as in dbt's staging models. An addition whose artist has not landed yet still counts (no
-- name, no popularity); one without an artist does not.
WITH additions AS (
  SELECT playlist_id, track_id, added_at, artist_id
  FROM (
    SELECT t.*, row_number() OVER (
      PARTITION BY playlist_id, track_id, added_at
      ORDER BY ingest_on DESC, processing_timestamp DESC, source_object DESC
    ) AS version_rank
    FROM "${database}"."playlist_tracks" AS t
  ) AS versions
  WHERE version_rank = 1
),
latest_artists AS (
  SELECT artist_id, name, primary_genre, popularity, followers
  FROM (
    SELECT a.*, row_number() OVER (
      PARTITION BY artist_id
      ORDER BY ingest_on DESC, processing_timestamp DESC, source_object DESC
    ) AS version_rank
    FROM "${database}"."artists" AS a
  ) AS versions
  WHERE version_rank = 1
)
SELECT
  p.artist_id,
  a.name,
  a.primary_genre,
  a.popularity,
  a.followers,
  count(*)                      AS playlist_additions,
  count(DISTINCT p.playlist_id) AS playlists,
  count(DISTINCT p.track_id)    AS tracks,
  max(p.added_at)               AS last_added_at
FROM additions AS p
LEFT JOIN latest_artists AS a ON a.artist_id = p.artist_id
WHERE p.artist_id IS NOT NULL
GROUP BY p.artist_id, a.name, a.primary_genre, a.popularity, a.followers
ORDER BY playlist_additions DESC, a.popularity DESC NULLS LAST, p.artist_id
LIMIT 100
