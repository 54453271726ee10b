-- Calendar: every day from the first to the last day a track was added to a playlist (stg_playlist_tracks);
-- columns and their meaning: macro date_dimension.
{{ date_dimension("select cast(added_at as date) as d from " ~ ref('stg_playlist_tracks')) }}
