//! HTTP emulator of a Spotify-style catalogue API: OAuth2 client credentials, offset/limit
//! paging, an "epoch" that changes the data between runs, and fault injection.
//!
//! Routes:
//!
//! - `POST /api/token`: OAuth2 client credentials grant (RFC 6749 §4.4), form-urlencoded body
//!   with `grant_type=client_credentials`; the client authenticates with HTTP Basic auth (used
//!   when an `Authorization: Basic` header is present) or with the form fields `client_id` and
//!   `client_secret`. Answers `{"access_token", "token_type": "Bearer", "expires_in"}`; wrong or
//!   missing credentials give 401 `{"error": "invalid_client"}`, a grant type other than
//!   `client_credentials` 400 `{"error": "unsupported_grant_type"}`, a missing one (or a body
//!   that is not a form) 400 `{"error": "invalid_request"}`.
//! - `GET /v1/artists`, `/v1/albums`, `/v1/tracks`, `/v1/playlists` (`?offset=&limit=`, limit
//!   1..=50, default 20): a page `{"href", "items", "limit", "offset", "total", "next",
//!   "previous"}` whose `next`/`previous` are absolute URLs (built from the request's `Host`)
//!   or `null`. They need `Authorization: Bearer <token>`, else 401
//!   `{"error": {"status": 401, "message": "No token provided" | "Invalid access token" |
//!   "The access token expired"}}`. A bad `limit` or `offset` gives 400 `"Invalid limit"` /
//!   `"Invalid offset"`.
//! - Control (no authentication): `GET /admin/stats`, `GET|POST /admin/faults`,
//!   `GET|POST /admin/epoch` (`{"epoch": n}`), `POST /admin/expire-tokens`, `GET /health`.
//!
//! A data request goes through, in this order: the injected server error (`error_next`, like a
//! flaky gateway in front of the service), authentication (a request that passes it counts
//! against its token's `expire_tokens_after_requests` budget), the injected rate limit
//! (`rate_limit_next`), then parameter validation.
//!
//! The data ([`SpotifyData`]) is generated deterministically from a seed (ChaCha8, each record
//! keyed by its kind and index, so a record does not depend on how many others there are). The
//! emulator serves it at an epoch ([`SpotifyData::at_epoch`]): from one epoch to the next about
//! 30 % of the artists change their `popularity` and `followers.total` (followers only grow),
//! about 30 % of the albums change their `popularity`, and every playlist gains 1 to 3 tracks
//! added on day `k` (epoch `k` ≥ 1 adds tracks dated `2025-01-01 + (k - 1)` days; the epoch-0
//! tracks are dated in 2023–2024). Ids, names and tracks never change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::extract::{Form, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Client id accepted when [`SpotifyConfig::default`] is used.
pub const DEFAULT_CLIENT_ID: &str = "deftunes-spotify-client";
/// Client secret accepted when [`SpotifyConfig::default`] is used.
pub const DEFAULT_CLIENT_SECRET: &str = "deftunes-spotify-secret";
/// Lifetime of an access token (`expires_in`) when [`SpotifyConfig::default`] is used.
pub const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 3600;
/// Page size when the request gives no `limit`.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest accepted `limit`.
pub const MAX_LIMIT: usize = 50;
/// Largest epoch: playlists grow with every epoch, and a view is computed from epoch 0.
pub const MAX_EPOCH: u32 = 1000;
/// Percentage of the artists (and, independently, of the albums) that change per epoch.
pub const CHANGE_PERCENT: u32 = 30;

/// Data endpoints, as named in [`SpotifyStats::requests`] and [`SpotifyStats::ok`].
pub const ENDPOINTS: [&str; 4] = ["artists", "albums", "tracks", "playlists"];

// ---------------------------------------------------------------------------------------------
// Records (serialized exactly as the API answers them)
// ---------------------------------------------------------------------------------------------

/// `{"total": n}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Followers {
    pub total: u64,
}

/// A `/v1/artists` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artist {
    /// 22 base62 characters.
    pub id: String,
    pub name: String,
    /// Zero to three genres.
    pub genres: Vec<String>,
    /// 0..=100; changes with the epoch.
    pub popularity: u32,
    /// Changes (grows) with the epoch, together with `popularity`.
    pub followers: Followers,
    /// Always `"artist"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `spotify:artist:<id>`.
    pub uri: String,
}

/// `{"id", "name"}` of an artist or album inside another record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NamedRef {
    pub id: String,
    pub name: String,
}

/// `{"id"}` of a record inside a playlist item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdRef {
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlbumType {
    Album,
    Single,
    Compilation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseDatePrecision {
    /// `release_date` is `YYYY-MM-DD`.
    Day,
    /// `release_date` is `YYYY`.
    Year,
}

/// A `/v1/albums` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Album {
    pub id: String,
    pub name: String,
    pub album_type: AlbumType,
    /// `YYYY-MM-DD`, or `YYYY` when `release_date_precision` is `year`.
    pub release_date: String,
    pub release_date_precision: ReleaseDatePrecision,
    /// Number of `/v1/tracks` items on this album.
    pub total_tracks: u32,
    /// 0..=100; changes with the epoch.
    pub popularity: u32,
    pub label: String,
    /// One or two artists, two to four for compilations (none when there are no artists).
    pub artists: Vec<NamedRef>,
}

/// A `/v1/tracks` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    pub id: String,
    pub name: String,
    pub duration_ms: u32,
    pub explicit: bool,
    pub popularity: u32,
    /// 1-based position on its album.
    pub track_number: u32,
    pub album: NamedRef,
    /// An artist of the album first, sometimes a featured artist after it.
    pub artists: Vec<NamedRef>,
}

/// `{"id", "display_name"}` of a playlist owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaylistOwner {
    pub id: String,
    pub display_name: String,
}

/// The track of a playlist item: the `/v1/tracks` item's id, name, album id and artist ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaylistTrack {
    pub id: String,
    pub name: String,
    pub album: IdRef,
    pub artists: Vec<IdRef>,
}

/// One track of a playlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaylistItem {
    /// `YYYY-MM-DDTHH:MM:SSZ`; items are in `added_at` order.
    pub added_at: String,
    pub added_by: IdRef,
    pub track: PlaylistTrack,
}

/// `{"total", "items"}`: all the tracks of a playlist, embedded whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaylistTracks {
    pub total: u32,
    pub items: Vec<PlaylistItem>,
}

/// A `/v1/playlists` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Playlist {
    pub id: String,
    pub name: String,
    /// Sometimes empty.
    pub description: String,
    pub owner: PlaylistOwner,
    /// Changes whenever the tracks change (every epoch).
    pub snapshot_id: String,
    pub tracks: PlaylistTracks,
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/// How many records to generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpotifyScale {
    pub artists: usize,
    /// Generated only if there is at least one artist.
    pub albums: usize,
    /// Generated only if there is at least one album. The first `albums` tracks go one per
    /// album, so every album has a track when `tracks >= albums`.
    pub tracks: usize,
    pub playlists: usize,
    /// Tracks of each playlist at epoch 0 (at most `tracks`: no track twice in a playlist
    /// while the catalogue has tracks it does not hold yet).
    pub tracks_per_playlist: usize,
}

impl Default for SpotifyScale {
    fn default() -> Self {
        SpotifyScale {
            artists: 200,
            albums: 300,
            tracks: 1500,
            playlists: 25,
            tracks_per_playlist: 40,
        }
    }
}

/// How an artist's or album's values move with the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Drift {
    /// 10..=90.
    center: u32,
    /// A shuffle of -10..=10: popularity at a change epoch `j` is `center + offsets[j % 21]`.
    offsets: [i8; CYCLE as usize],
    followers_base: u64,
    /// >= 1: followers at a change epoch `j` are `base + j * rate + jitter(j)`, jitter < rate.
    followers_rate: u64,
}

/// Popularity offsets cycle over 21 values; no two successive changes are 21 epochs apart.
const CYCLE: u32 = 21;
const MAX_GAP: u32 = CYCLE - 1;

/// Generated catalogue: the records at epoch 0, and their views at any epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotifyData {
    pub seed: u64,
    pub scale: SpotifyScale,
    /// At epoch 0.
    pub artists: Vec<Artist>,
    /// At epoch 0.
    pub albums: Vec<Album>,
    /// The same at every epoch.
    pub tracks: Vec<Track>,
    /// At epoch 0.
    pub playlists: Vec<Playlist>,
    artist_drift: Vec<Drift>,
    album_drift: Vec<Drift>,
    /// Indices into `tracks` of each playlist's epoch-0 items.
    playlist_tracks: Vec<Vec<usize>>,
    /// Whether a playlist is collaborative (items added by several users).
    playlist_collaborative: Vec<bool>,
    /// Users who own playlists and add tracks.
    users: Vec<PlaylistOwner>,
}

/// The records served at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotifyEpoch {
    pub epoch: u32,
    pub artists: Vec<Artist>,
    pub albums: Vec<Album>,
    pub tracks: Vec<Track>,
    pub playlists: Vec<Playlist>,
}

/// An epoch above [`MAX_EPOCH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("epoch {0} is above the maximum {MAX_EPOCH}")]
pub struct EpochTooLarge(pub u32);

// Domains of the keyed generators.
const D_ARTIST: u64 = 1;
const D_ALBUM: u64 = 2;
const D_TRACK: u64 = 3;
const D_PLAYLIST: u64 = 4;
const D_USER: u64 = 5;
const D_ARTIST_CHANGE: u64 = 6;
const D_ALBUM_CHANGE: u64 = 7;
const D_FOLLOWERS: u64 = 8;
const D_PLAYLIST_ADD: u64 = 9;
const D_SNAPSHOT: u64 = 10;

/// Users who own playlists and add tracks to them.
const USERS: u64 = 12;

/// An independent ChaCha8 generator for `(seed, domain, a, b)`.
fn keyed(seed: u64, domain: u64, a: u64, b: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (i, v) in [seed, domain, a, b].into_iter().enumerate() {
        key[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE32_LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

fn random_chars(rng: &mut impl Rng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

fn pick<'a>(rng: &mut impl Rng, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or("")
}

/// The epoch `<= epoch` at which a record last changed (0: never since epoch 0). Changes happen
/// at the epochs the keyed draw selects (~[`CHANGE_PERCENT`] %), and also whenever
/// [`MAX_GAP`] epochs passed without one, so that two successive changes never map to the same
/// popularity offset.
fn last_change(seed: u64, domain: u64, index: usize, epoch: u32) -> u32 {
    let mut drawn = epoch;
    while drawn > 0
        && keyed(seed, domain, index as u64, u64::from(drawn)).random_range(0..100)
            >= CHANGE_PERCENT
    {
        drawn -= 1;
    }
    drawn + (epoch - drawn) / MAX_GAP * MAX_GAP
}

impl Drift {
    fn draw(rng: &mut ChaCha8Rng) -> Drift {
        let center = rng.random_range(10..=90);
        let mut offsets: [i8; CYCLE as usize] = std::array::from_fn(|k| k as i8 - 10);
        offsets.shuffle(rng);
        let followers_base = 10f64.powf(rng.random_range(2.0..7.5)) as u64;
        let followers_rate = rng.random_range(1..=followers_base / 200 + 1);
        Drift {
            center,
            offsets,
            followers_base,
            followers_rate,
        }
    }

    fn popularity(&self, changed_at: u32) -> u32 {
        let offset = i64::from(self.offsets[(changed_at % CYCLE) as usize]);
        (i64::from(self.center) + offset).clamp(0, 100) as u32
    }

    fn followers(&self, seed: u64, index: usize, changed_at: u32) -> u64 {
        let jitter = keyed(seed, D_FOLLOWERS, index as u64, u64::from(changed_at))
            .random_range(0..self.followers_rate);
        self.followers_base + u64::from(changed_at) * self.followers_rate + jitter
    }
}

fn fmt_added_at(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// Epoch-0 playlist items are added in `[2023-01-01, 2025-01-01)`; epoch `k` adds items on day
/// `2025-01-01 + (k - 1)`.
fn epoch_day(epoch: u32) -> NaiveDateTime {
    let first = date(2025, 1, 1);
    first
        .checked_add_days(Days::new(u64::from(epoch.saturating_sub(1))))
        .unwrap_or(first)
        .and_time(NaiveTime::MIN)
}

fn sorted_instants(rng: &mut ChaCha8Rng, n: usize, from: NaiveDateTime, secs: i64) -> Vec<String> {
    let mut offsets: Vec<i64> = (0..n).map(|_| rng.random_range(0..secs)).collect();
    offsets.sort_unstable();
    offsets
        .into_iter()
        .map(|s| fmt_added_at(from + TimeDelta::seconds(s)))
        .collect()
}

impl SpotifyData {
    /// Generates the catalogue. Deterministic: same `seed` and `scale` give identical data.
    pub fn generate(seed: u64, scale: &SpotifyScale) -> SpotifyData {
        let users: Vec<PlaylistOwner> = (0..USERS)
            .map(|i| {
                let mut rng = keyed(seed, D_USER, i, 0);
                PlaylistOwner {
                    id: format!("31{}", random_chars(&mut rng, BASE32_LOWER, 26)),
                    display_name: format!(
                        "{} {}",
                        pick(&mut rng, FIRST_NAMES),
                        pick(&mut rng, LAST_NAMES)
                    ),
                }
            })
            .collect();

        let mut artists = Vec::with_capacity(scale.artists);
        let mut artist_drift = Vec::with_capacity(scale.artists);
        for i in 0..scale.artists {
            let mut rng = keyed(seed, D_ARTIST, i as u64, 0);
            let id = random_chars(&mut rng, BASE62, 22);
            let name = artist_name(&mut rng);
            let n_genres = rng.random_range(0..=3);
            let genres = GENRES
                .choose_multiple(&mut rng, n_genres)
                .map(|g| g.to_string())
                .collect();
            let drift = Drift::draw(&mut rng);
            artists.push(Artist {
                uri: format!("spotify:artist:{id}"),
                id,
                name,
                genres,
                popularity: drift.popularity(0),
                followers: Followers {
                    total: drift.followers(seed, i, 0),
                },
                kind: "artist".to_owned(),
            });
            artist_drift.push(drift);
        }
        let artist_ref = |i: usize| NamedRef {
            id: artists[i].id.clone(),
            name: artists[i].name.clone(),
        };

        let n_albums = if artists.is_empty() { 0 } else { scale.albums };
        let mut albums = Vec::with_capacity(n_albums);
        let mut album_drift = Vec::with_capacity(n_albums);
        for i in 0..n_albums {
            let mut rng = keyed(seed, D_ALBUM, i as u64, 0);
            let id = random_chars(&mut rng, BASE62, 22);
            let roll = rng.random_range(0..100);
            let album_type = match roll {
                0..60 => AlbumType::Album,
                60..90 => AlbumType::Single,
                _ => AlbumType::Compilation,
            };
            let n_artists = match album_type {
                AlbumType::Compilation => rng.random_range(2..=4),
                _ if rng.random_bool(0.15) => 2,
                _ => 1,
            };
            let album_artists =
                rand::seq::index::sample(&mut rng, artists.len(), n_artists.min(artists.len()))
                    .into_iter()
                    .map(artist_ref)
                    .collect();
            let name = album_name(&mut rng, album_type);
            let year = rng.random_range(1960..=2024);
            let (release_date, release_date_precision) = if rng.random_bool(0.15) {
                (year.to_string(), ReleaseDatePrecision::Year)
            } else {
                let day = NaiveDate::from_yo_opt(year, rng.random_range(1..=365))
                    .unwrap_or(NaiveDate::MIN);
                (
                    day.format("%Y-%m-%d").to_string(),
                    ReleaseDatePrecision::Day,
                )
            };
            let label = pick(&mut rng, LABELS).to_owned();
            let drift = Drift::draw(&mut rng);
            albums.push(Album {
                id,
                name,
                album_type,
                release_date,
                release_date_precision,
                total_tracks: 0,
                popularity: drift.popularity(0),
                label,
                artists: album_artists,
            });
            album_drift.push(drift);
        }

        let n_tracks = if albums.is_empty() { 0 } else { scale.tracks };
        let mut tracks = Vec::with_capacity(n_tracks);
        for t in 0..n_tracks {
            let mut rng = keyed(seed, D_TRACK, t as u64, 0);
            let id = random_chars(&mut rng, BASE62, 22);
            let a = if t < albums.len() {
                t
            } else {
                rng.random_range(0..albums.len())
            };
            let album = &mut albums[a];
            album.total_tracks += 1;
            let mut track_artists: Vec<NamedRef> = album
                .artists
                .choose(&mut rng)
                .cloned()
                .into_iter()
                .collect();
            if rng.random_bool(0.2) {
                let featured = artist_ref(rng.random_range(0..artists.len()));
                if !track_artists.contains(&featured) {
                    track_artists.push(featured);
                }
            }
            tracks.push(Track {
                id,
                name: track_name(&mut rng),
                duration_ms: rng.random_range(90_000..=420_000),
                explicit: rng.random_bool(0.2),
                popularity: rng.random_range(0..=100),
                track_number: album.total_tracks,
                album: NamedRef {
                    id: album.id.clone(),
                    name: album.name.clone(),
                },
                artists: track_artists,
            });
        }

        let mut data = SpotifyData {
            seed,
            scale: scale.clone(),
            artists,
            albums,
            tracks,
            playlists: Vec::with_capacity(scale.playlists),
            artist_drift,
            album_drift,
            playlist_tracks: Vec::with_capacity(scale.playlists),
            playlist_collaborative: Vec::with_capacity(scale.playlists),
            users,
        };
        let epoch0_start = date(2023, 1, 1).and_time(NaiveTime::MIN);
        let epoch0_secs = (epoch_day(1) - epoch0_start).num_seconds();
        for p in 0..scale.playlists {
            let mut rng = keyed(seed, D_PLAYLIST, p as u64, 0);
            let id = random_chars(&mut rng, BASE62, 22);
            let name = playlist_name(&mut rng);
            let description = if rng.random_bool(0.3) {
                String::new()
            } else {
                format!(
                    "{} {} for {}.",
                    pick(&mut rng, MOODS),
                    pick(&mut rng, GENRES),
                    pick(&mut rng, OCCASIONS)
                )
            };
            let owner = if rng.random_bool(0.2) {
                PlaylistOwner {
                    id: "spotify".to_owned(),
                    display_name: "Spotify".to_owned(),
                }
            } else {
                data.users
                    .choose(&mut rng)
                    .cloned()
                    .unwrap_or(PlaylistOwner {
                        id: "spotify".to_owned(),
                        display_name: "Spotify".to_owned(),
                    })
            };
            let collaborative = owner.id != "spotify" && rng.random_bool(0.3);
            let n = scale.tracks_per_playlist.min(data.tracks.len());
            let picks = rand::seq::index::sample(&mut rng, data.tracks.len(), n).into_vec();
            let times = sorted_instants(&mut rng, n, epoch0_start, epoch0_secs);
            let items = picks
                .iter()
                .zip(times)
                .map(|(&t, added_at)| data.item(&mut rng, t, added_at, &owner, collaborative))
                .collect::<Vec<_>>();
            data.playlists.push(Playlist {
                id,
                name,
                description,
                snapshot_id: snapshot_id(seed, p, items.len()),
                owner,
                tracks: PlaylistTracks {
                    total: items.len() as u32,
                    items,
                },
            });
            data.playlist_tracks.push(picks);
            data.playlist_collaborative.push(collaborative);
        }
        data
    }

    fn item(
        &self,
        rng: &mut ChaCha8Rng,
        track: usize,
        added_at: String,
        owner: &PlaylistOwner,
        collaborative: bool,
    ) -> PlaylistItem {
        let adder = if collaborative && rng.random_bool(0.5) {
            self.users.choose(rng).map_or(&owner.id, |u| &u.id)
        } else {
            &owner.id
        };
        let t = &self.tracks[track];
        PlaylistItem {
            added_at,
            added_by: IdRef { id: adder.clone() },
            track: PlaylistTrack {
                id: t.id.clone(),
                name: t.name.clone(),
                album: IdRef {
                    id: t.album.id.clone(),
                },
                artists: t
                    .artists
                    .iter()
                    .map(|a| IdRef { id: a.id.clone() })
                    .collect(),
            },
        }
    }

    /// The artists at `epoch` (epoch 0: [`SpotifyData::artists`]).
    pub fn artists_at(&self, epoch: u32) -> Vec<Artist> {
        self.artists
            .iter()
            .zip(&self.artist_drift)
            .enumerate()
            .map(|(i, (a, drift))| {
                let changed_at = last_change(self.seed, D_ARTIST_CHANGE, i, epoch);
                Artist {
                    popularity: drift.popularity(changed_at),
                    followers: Followers {
                        total: drift.followers(self.seed, i, changed_at),
                    },
                    ..a.clone()
                }
            })
            .collect()
    }

    /// The albums at `epoch` (epoch 0: [`SpotifyData::albums`]).
    pub fn albums_at(&self, epoch: u32) -> Vec<Album> {
        self.albums
            .iter()
            .zip(&self.album_drift)
            .enumerate()
            .map(|(i, (a, drift))| Album {
                popularity: drift.popularity(last_change(self.seed, D_ALBUM_CHANGE, i, epoch)),
                ..a.clone()
            })
            .collect()
    }

    /// The playlists at `epoch` (epoch 0: [`SpotifyData::playlists`]): each epoch `k` in
    /// `1..=epoch` appends 1 to 3 tracks added on day `2025-01-01 + (k - 1)`.
    pub fn playlists_at(&self, epoch: u32) -> Vec<Playlist> {
        let n_tracks = self.tracks.len();
        self.playlists
            .iter()
            .enumerate()
            .map(|(p, base)| {
                let mut playlist = base.clone();
                if n_tracks == 0 {
                    return playlist;
                }
                let collaborative = self.playlist_collaborative[p];
                let mut held: HashSet<usize> = self.playlist_tracks[p].iter().copied().collect();
                for k in 1..=epoch {
                    let mut rng = keyed(self.seed, D_PLAYLIST_ADD, p as u64, u64::from(k));
                    let n = rng.random_range(1..=3);
                    let times = sorted_instants(&mut rng, n, epoch_day(k), 86_400);
                    for added_at in times {
                        let mut t = rng.random_range(0..n_tracks);
                        // No track twice while the catalogue has tracks the playlist lacks.
                        while held.len() < n_tracks && held.contains(&t) {
                            t = rng.random_range(0..n_tracks);
                        }
                        held.insert(t);
                        let item = self.item(&mut rng, t, added_at, &base.owner, collaborative);
                        playlist.tracks.items.push(item);
                    }
                }
                playlist.tracks.total = playlist.tracks.items.len() as u32;
                playlist.snapshot_id = snapshot_id(self.seed, p, playlist.tracks.items.len());
                playlist
            })
            .collect()
    }

    /// All the records served at `epoch`.
    pub fn at_epoch(&self, epoch: u32) -> SpotifyEpoch {
        SpotifyEpoch {
            epoch,
            artists: self.artists_at(epoch),
            albums: self.albums_at(epoch),
            tracks: self.tracks.clone(),
            playlists: self.playlists_at(epoch),
        }
    }
}

fn snapshot_id(seed: u64, playlist: usize, items: usize) -> String {
    random_chars(
        &mut keyed(seed, D_SNAPSHOT, playlist as u64, items as u64),
        BASE62,
        32,
    )
}

fn artist_name(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..4) {
        0 => format!("The {} {}", pick(rng, ADJECTIVES), pick(rng, PLURALS)),
        1 => format!("{} {}", pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES)),
        2 => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
        _ => format!("DJ {}", pick(rng, NOUNS)),
    }
}

fn album_name(rng: &mut ChaCha8Rng, album_type: AlbumType) -> String {
    match album_type {
        AlbumType::Compilation => format!("{} {}", pick(rng, NOUNS), pick(rng, COLLECTIONS)),
        _ if rng.random_bool(0.5) => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
        _ => format!("{} {}", pick(rng, NOUNS), pick(rng, PLURALS)),
    }
}

fn track_name(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..3) {
        0 => format!(
            "{} {} the {}",
            pick(rng, VERBS),
            pick(rng, PREPOSITIONS),
            pick(rng, NOUNS)
        ),
        1 => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
        _ => pick(rng, NOUNS).to_owned(),
    }
}

fn playlist_name(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..3) {
        0 => format!("{} {}", pick(rng, MOODS), pick(rng, GENRES)),
        1 => format!("{} Mix", pick(rng, OCCASIONS)),
        _ => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, OCCASIONS)),
    }
}

const ADJECTIVES: &[&str] = &[
    "Blue", "Golden", "Silent", "Wild", "Electric", "Midnight", "Velvet", "Neon", "Endless",
    "Crimson", "Paper", "Hollow", "Bright", "Distant", "Sacred", "Restless",
];
const NOUNS: &[&str] = &[
    "Heart", "River", "Fire", "Road", "Dream", "Night", "Rain", "Moon", "City", "Shadow", "Summer",
    "Ocean", "Mirror", "Garden", "Storm", "Radio", "Echo", "Horizon", "Island", "Ghost",
];
const PLURALS: &[&str] = &[
    "Wolves",
    "Kings",
    "Lovers",
    "Strangers",
    "Sparks",
    "Rebels",
    "Ravens",
    "Machines",
    "Tigers",
];
const VERBS: &[&str] = &[
    "Dancing", "Running", "Falling", "Walking", "Dreaming", "Drifting", "Rolling",
];
const PREPOSITIONS: &[&str] = &["in", "on", "through", "under", "across", "beyond"];
const COLLECTIONS: &[&str] = &[
    "Greatest Hits",
    "Anthology",
    "Collection",
    "Essentials",
    "Classics",
];
const FIRST_NAMES: &[&str] = &[
    "Ana", "James", "Maria", "Lucas", "Sofia", "Omar", "Yuki", "Ingrid", "Priya", "Chen", "Amara",
    "Mateo",
];
const LAST_NAMES: &[&str] = &[
    "Rivera", "Smith", "Nakamura", "Okafor", "Larsen", "Dubois", "Kowalski", "Silva", "Haddad",
    "Moreau", "Patel", "Novak",
];
const GENRES: &[&str] = &[
    "pop",
    "rock",
    "indie rock",
    "hip hop",
    "rap",
    "jazz",
    "soul",
    "r&b",
    "funk",
    "techno",
    "house",
    "ambient",
    "folk",
    "country",
    "metal",
    "punk",
    "reggae",
    "latin",
    "k-pop",
    "classical",
    "blues",
    "synthwave",
];
const LABELS: &[&str] = &[
    "Blue Room Records",
    "Nightjar Music",
    "Paper Moon Recordings",
    "Harbor Lights",
    "Echo Valley",
    "Independent",
    "Crimson Tide Records",
    "Northern Sound",
];
const MOODS: &[&str] = &["Chill", "Happy", "Dark", "Mellow", "Upbeat", "Dreamy"];
const OCCASIONS: &[&str] = &[
    "Workout",
    "Focus",
    "Road Trip",
    "Sunday",
    "Party",
    "Sleep",
    "Cooking",
    "Commute",
];

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// How to start the emulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpotifyConfig {
    pub seed: u64,
    pub scale: SpotifyScale,
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of the access tokens; they expire by wall clock after that.
    pub token_lifetime_secs: u64,
}

impl Default for SpotifyConfig {
    fn default() -> Self {
        SpotifyConfig {
            seed: crate::dataset::DEFAULT_SEED,
            scale: SpotifyScale::default(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            token_lifetime_secs: DEFAULT_TOKEN_LIFETIME_SECS,
        }
    }
}

/// Faults injected into data requests (`/v1/...`). `SpotifyFaults::default()` injects none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpotifyFaults {
    /// The next N data requests (with a valid token) answer 429 with `Retry-After`.
    pub rate_limit_next: u32,
    /// `Retry-After` of the injected 429s, in seconds (0 allowed). Default 1.
    pub retry_after_secs: u64,
    /// The next N data requests fail with `error_status`, before authentication.
    pub error_next: u32,
    /// Status of the injected errors; 0 (or anything that is not a 4xx/5xx) means 503.
    pub error_status: u16,
    /// If > 0, every token dies ("The access token expired") after this many data requests
    /// made with it (counted since its grant); a dead token stays dead.
    pub expire_tokens_after_requests: u32,
}

impl Default for SpotifyFaults {
    fn default() -> Self {
        SpotifyFaults {
            rate_limit_next: 0,
            retry_after_secs: 1,
            error_next: 0,
            error_status: 0,
            expire_tokens_after_requests: 0,
        }
    }
}

/// Counters since the start (or the last [`RunningSpotify::reset_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotifyStats {
    /// Access tokens granted.
    pub token_grants: u64,
    /// Token requests refused (401 or 400).
    pub token_rejections: u64,
    /// Data requests received, per endpoint ([`ENDPOINTS`]), whatever their answer.
    pub requests: BTreeMap<String, u64>,
    /// Data requests answered 200, per endpoint.
    pub ok: BTreeMap<String, u64>,
    /// Data requests answered 401 (any reason).
    pub unauthorized: u64,
    /// ...of which with an expired token (wall clock, fault, or forced).
    pub expired_tokens: u64,
    /// Data requests answered 429.
    pub rate_limited: u64,
    /// Data requests that got an injected error.
    pub injected_errors: u64,
    /// Data requests received before the `Retry-After` of the last 429 had elapsed: a client
    /// that backs off keeps this at 0.
    pub early_retries: u64,
}

impl SpotifyStats {
    /// Data requests received on `endpoint` (`"artists"`, ...).
    pub fn requests_to(&self, endpoint: &str) -> u64 {
        self.requests.get(endpoint).copied().unwrap_or(0)
    }

    /// Data requests on `endpoint` answered 200.
    pub fn ok_from(&self, endpoint: &str) -> u64 {
        self.ok.get(endpoint).copied().unwrap_or(0)
    }
}

struct TokenState {
    expires_at: Instant,
    /// Data requests authenticated with it.
    uses: u32,
    /// Expired by a fault or by [`RunningSpotify::expire_tokens`].
    dead: bool,
}

#[derive(Default)]
struct Inner {
    faults: SpotifyFaults,
    stats: SpotifyStats,
    tokens: HashMap<String, TokenState>,
    /// Until when the last 429 asked clients to wait.
    retry_deadline: Option<Instant>,
}

struct Shared {
    data: Arc<SpotifyData>,
    client_id: String,
    client_secret: String,
    token_lifetime: Duration,
    /// `Host` of the page links when a request has none.
    fallback_host: String,
    view: RwLock<Arc<SpotifyEpoch>>,
    inner: Mutex<Inner>,
}

type AppState = Arc<Shared>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn view(&self) -> Arc<SpotifyEpoch> {
        self.view
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_epoch(&self, epoch: u32) -> Result<(), EpochTooLarge> {
        if epoch > MAX_EPOCH {
            return Err(EpochTooLarge(epoch));
        }
        let view = Arc::new(self.data.at_epoch(epoch));
        *self
            .view
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = view;
        tracing::info!(epoch, "spotify emulator epoch set");
        Ok(())
    }
}

fn build_router(state: AppState) -> Router {
    Router::new()
        .route("/api/token", post(token))
        .route("/v1/artists", get(artists))
        .route("/v1/albums", get(albums))
        .route("/v1/tracks", get(tracks))
        .route("/v1/playlists", get(playlists))
        .route("/admin/stats", get(admin_stats))
        .route(
            "/admin/faults",
            get(admin_get_faults).post(admin_set_faults),
        )
        .route("/admin/epoch", get(admin_get_epoch).post(admin_set_epoch))
        .route("/admin/expire-tokens", post(admin_expire_tokens))
        .route("/health", get(health))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// A Spotify emulator serving in a background task.
pub struct RunningSpotify {
    pub addr: SocketAddr,
    /// `http://<addr>`, e.g. `http://127.0.0.1:41234`.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    state: AppState,
    server: crate::serve::Server,
}

impl RunningSpotify {
    /// `<base_url>/api/token`.
    pub fn token_url(&self) -> String {
        format!("{}/api/token", self.base_url)
    }

    /// `<base_url>/v1`: the data endpoints are `<api_url>/artists`, ...
    pub fn api_url(&self) -> String {
        format!("{}/v1", self.base_url)
    }

    /// The generated catalogue (records at any epoch: [`SpotifyData::at_epoch`]).
    pub fn data(&self) -> Arc<SpotifyData> {
        self.state.data.clone()
    }

    /// The records served now.
    pub fn served(&self) -> Arc<SpotifyEpoch> {
        self.state.view()
    }

    pub fn epoch(&self) -> u32 {
        self.state.view().epoch
    }

    /// Serves the records at `epoch` from the next request on.
    pub fn set_epoch(&self, epoch: u32) -> Result<(), EpochTooLarge> {
        self.state.set_epoch(epoch)
    }

    /// Replaces the injected faults (takes effect for the next request).
    pub fn set_faults(&self, faults: SpotifyFaults) {
        lock(&self.state.inner).faults = faults;
    }

    /// The current faults (counters as decremented so far).
    pub fn faults(&self) -> SpotifyFaults {
        lock(&self.state.inner).faults.clone()
    }

    pub fn stats(&self) -> SpotifyStats {
        lock(&self.state.inner).stats.clone()
    }

    pub fn reset_stats(&self) {
        let mut inner = lock(&self.state.inner);
        inner.stats = SpotifyStats::default();
        inner.retry_deadline = None;
    }

    /// Every token granted so far expires now.
    pub fn expire_tokens(&self) {
        expire_all(&self.state);
    }

    /// Graceful shutdown: stops accepting, lets in-flight requests finish (at most 5 s).
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

fn expire_all(state: &Shared) {
    for t in lock(&state.inner).tokens.values_mut() {
        t.dead = true;
    }
}

/// Generates the catalogue of `config`, binds `bind` (port 0: any free port) and serves the
/// emulator at epoch 0 in a background task.
pub async fn start(config: SpotifyConfig, bind: SocketAddr) -> std::io::Result<RunningSpotify> {
    let data = Arc::new(SpotifyData::generate(config.seed, &config.scale));
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let view = Arc::new(data.at_epoch(0));
    let state = Arc::new(Shared {
        data,
        client_id: config.client_id.clone(),
        client_secret: config.client_secret.clone(),
        token_lifetime: Duration::from_secs(config.token_lifetime_secs),
        fallback_host: addr.to_string(),
        view: RwLock::new(view),
        inner: Mutex::new(Inner::default()),
    });
    let server =
        crate::serve::Server::spawn("spotify emulator", listener, build_router(state.clone()))?;
    Ok(RunningSpotify {
        addr,
        base_url: server.base_url(),
        client_id: config.client_id,
        client_secret: config.client_secret,
        state,
        server,
    })
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    tracing::info!(
        %method,
        %path,
        %query,
        status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "spotify request"
    );
    resp
}

/// `{"error": {"status", "message"}}`, the data endpoints' error body.
fn api_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "status": status.as_u16(), "message": message } })),
    )
        .into_response()
}

/// `{"error": code}`, the token endpoint's error body (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, code: &str, basic: bool) -> Response {
    let mut resp = (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({ "error": code })),
    )
        .into_response();
    if basic && status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"spotify\""),
        );
    }
    resp
}

/// `(client_id, client_secret)` from an `Authorization: Basic` header; `Err` if the header is
/// Basic but malformed, `Ok(None)` if there is no Basic header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?.trim();
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (id, secret) = decoded.split_once(':').ok_or(())?;
    Ok(Some((id.to_owned(), secret.to_owned())))
}

fn new_token() -> String {
    format!("BQ{}", random_chars(&mut rand::rng(), BASE62, 62))
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let reject = |status, code, basic| {
        lock(&state.inner).stats.token_rejections += 1;
        oauth_error(status, code, basic)
    };
    let form = match form {
        Ok(Form(form)) => form,
        Err(_) => return reject(StatusCode::BAD_REQUEST, "invalid_request", false),
    };
    let (credentials, basic) = match basic_credentials(&headers) {
        Ok(Some(creds)) => (Some(creds), true),
        Ok(None) => (
            form.get("client_id")
                .zip(form.get("client_secret"))
                .map(|(id, secret)| (id.clone(), secret.clone())),
            false,
        ),
        Err(()) => (None, true),
    };
    let authenticated = credentials
        .is_some_and(|(id, secret)| id == state.client_id && secret == state.client_secret);
    if !authenticated {
        return reject(StatusCode::UNAUTHORIZED, "invalid_client", basic);
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        None => return reject(StatusCode::BAD_REQUEST, "invalid_request", basic),
        Some(_) => return reject(StatusCode::BAD_REQUEST, "unsupported_grant_type", basic),
    }
    let access_token = new_token();
    {
        let mut inner = lock(&state.inner);
        inner.tokens.insert(
            access_token.clone(),
            TokenState {
                expires_at: Instant::now() + state.token_lifetime,
                uses: 0,
                dead: false,
            },
        );
        inner.stats.token_grants += 1;
    }
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": state.token_lifetime.as_secs(),
        })),
    )
        .into_response()
}

const NO_TOKEN: &str = "No token provided";
const INVALID_TOKEN: &str = "Invalid access token";
const EXPIRED_TOKEN: &str = "The access token expired";

/// Checks the bearer token of a data request and counts the request against it.
fn authenticate(inner: &mut Inner, headers: &HeaderMap, now: Instant) -> Result<(), &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(NO_TOKEN),
    };
    if token.is_empty() {
        return Err(NO_TOKEN);
    }
    let budget = inner.faults.expire_tokens_after_requests;
    let Some(state) = inner.tokens.get_mut(token) else {
        return Err(INVALID_TOKEN);
    };
    if budget > 0 && state.uses >= budget {
        state.dead = true;
    }
    if state.dead || now >= state.expires_at {
        return Err(EXPIRED_TOKEN);
    }
    state.uses += 1;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Artists,
    Albums,
    Tracks,
    Playlists,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Artists => "artists",
            Endpoint::Albums => "albums",
            Endpoint::Tracks => "tracks",
            Endpoint::Playlists => "playlists",
        }
    }
}

/// What the faults and the token say about one data request.
enum Gate {
    Pass,
    Error(StatusCode),
    Unauthorized(&'static str),
    RateLimited(u64),
}

fn gate(state: &Shared, endpoint: Endpoint, headers: &HeaderMap) -> Gate {
    let now = Instant::now();
    let mut inner = lock(&state.inner);
    let inner = &mut *inner;
    *inner
        .stats
        .requests
        .entry(endpoint.name().to_owned())
        .or_default() += 1;
    match inner.retry_deadline {
        Some(deadline) if now < deadline => inner.stats.early_retries += 1,
        Some(_) => inner.retry_deadline = None,
        None => {}
    }
    if inner.faults.error_next > 0 {
        inner.faults.error_next -= 1;
        inner.stats.injected_errors += 1;
        let status = StatusCode::from_u16(inner.faults.error_status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Gate::Error(status);
    }
    if let Err(message) = authenticate(inner, headers, now) {
        inner.stats.unauthorized += 1;
        if message == EXPIRED_TOKEN {
            inner.stats.expired_tokens += 1;
        }
        return Gate::Unauthorized(message);
    }
    if inner.faults.rate_limit_next > 0 {
        inner.faults.rate_limit_next -= 1;
        inner.stats.rate_limited += 1;
        let secs = inner.faults.retry_after_secs;
        inner.retry_deadline = Some(now + Duration::from_secs(secs));
        return Gate::RateLimited(secs);
    }
    Gate::Pass
}

/// `offset` and `limit`, or the 400 message.
fn paging(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<(usize, usize), &'static str> {
    let Ok(Query(params)) = query else {
        return Err("Invalid query");
    };
    let offset = match params.get("offset") {
        None => 0,
        Some(raw) => raw.trim().parse::<usize>().map_err(|_| "Invalid offset")?,
    };
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or("Invalid limit")?,
    };
    Ok((offset, limit))
}

#[derive(Serialize)]
struct Page<'a, T> {
    href: String,
    items: &'a [T],
    limit: usize,
    offset: usize,
    total: usize,
    next: Option<String>,
    previous: Option<String>,
}

fn page_body<T: Serialize>(
    all: &[T],
    url: &str,
    offset: usize,
    limit: usize,
) -> serde_json::Result<Vec<u8>> {
    let total = all.len();
    let start = offset.min(total);
    let end = offset.saturating_add(limit).min(total);
    let link = |o: usize| format!("{url}?offset={o}&limit={limit}");
    serde_json::to_vec(&Page {
        href: link(offset),
        items: &all[start..end],
        limit,
        offset,
        total,
        next: (offset.saturating_add(limit) < total).then(|| link(offset + limit)),
        previous: (offset > 0).then(|| link(offset.saturating_sub(limit))),
    })
}

async fn data(
    state: AppState,
    endpoint: Endpoint,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    match gate(&state, endpoint, &headers) {
        Gate::Pass => {}
        Gate::Error(status) => {
            let message = if status == StatusCode::SERVICE_UNAVAILABLE {
                "Service unavailable"
            } else {
                "Server error"
            };
            return api_error(status, message);
        }
        Gate::Unauthorized(message) => {
            let mut resp = api_error(StatusCode::UNAUTHORIZED, message);
            let challenge = if message == NO_TOKEN {
                "Bearer realm=\"spotify\""
            } else {
                "Bearer realm=\"spotify\", error=\"invalid_token\""
            };
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            return resp;
        }
        Gate::RateLimited(secs) => {
            let mut resp = api_error(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded");
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return resp;
        }
    }
    let (offset, limit) = match paging(query) {
        Ok(p) => p,
        Err(message) => return api_error(StatusCode::BAD_REQUEST, message),
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or(&state.fallback_host);
    let url = format!("http://{host}/v1/{}", endpoint.name());
    let view = state.view();
    let body = match endpoint {
        Endpoint::Artists => page_body(&view.artists, &url, offset, limit),
        Endpoint::Albums => page_body(&view.albums, &url, offset, limit),
        Endpoint::Tracks => page_body(&view.tracks, &url, offset, limit),
        Endpoint::Playlists => page_body(&view.playlists, &url, offset, limit),
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("serialization failed: {e}"),
            )
        }
    };
    *lock(&state.inner)
        .stats
        .ok
        .entry(endpoint.name().to_owned())
        .or_default() += 1;
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

async fn artists(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    data(state, Endpoint::Artists, headers, query).await
}

async fn albums(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    data(state, Endpoint::Albums, headers, query).await
}

async fn tracks(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    data(state, Endpoint::Tracks, headers, query).await
}

async fn playlists(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    data(state, Endpoint::Playlists, headers, query).await
}

async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn admin_stats(State(state): State<AppState>) -> Response {
    Json(lock(&state.inner).stats.clone()).into_response()
}

async fn admin_get_faults(State(state): State<AppState>) -> Response {
    Json(lock(&state.inner).faults.clone()).into_response()
}

async fn admin_set_faults(
    State(state): State<AppState>,
    body: Result<Json<SpotifyFaults>, JsonRejection>,
) -> Response {
    let faults = match body {
        Ok(Json(f)) => f,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    tracing::info!(?faults, "spotify emulator faults set");
    lock(&state.inner).faults = faults.clone();
    Json(faults).into_response()
}

#[derive(Deserialize)]
struct EpochBody {
    epoch: u32,
}

async fn admin_get_epoch(State(state): State<AppState>) -> Response {
    Json(json!({ "epoch": state.view().epoch })).into_response()
}

async fn admin_set_epoch(
    State(state): State<AppState>,
    body: Result<Json<EpochBody>, JsonRejection>,
) -> Response {
    let epoch = match body {
        Ok(Json(b)) => b.epoch,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let shared = state.clone();
    match tokio::task::spawn_blocking(move || shared.set_epoch(epoch)).await {
        Ok(Ok(())) => Json(json!({ "epoch": epoch })).into_response(),
        Ok(Err(e)) => api_error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn admin_expire_tokens(State(state): State<AppState>) -> Response {
    expire_all(&state);
    Json(json!({ "expired": true })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn small() -> SpotifyScale {
        SpotifyScale {
            artists: 60,
            albums: 80,
            tracks: 300,
            playlists: 7,
            tracks_per_playlist: 12,
        }
    }

    async fn emulator(config: SpotifyConfig) -> RunningSpotify {
        start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
    }

    async fn default_emulator() -> RunningSpotify {
        emulator(SpotifyConfig::default()).await
    }

    async fn json_of(resp: reqwest::Response) -> (StatusCode, HeaderMap, Value) {
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        let mut headers = HeaderMap::new();
        for (k, v) in resp.headers() {
            headers.insert(
                header::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        (status, headers, body)
    }

    async fn grant(http: &reqwest::Client, emu: &RunningSpotify) -> String {
        let resp = http
            .post(emu.token_url())
            .basic_auth(&emu.client_id, Some(&emu.client_secret))
            .header(
                header::CONTENT_TYPE.as_str(),
                "application/x-www-form-urlencoded",
            )
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        let (status, _, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(
        http: &reqwest::Client,
        url: &str,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = http.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        json_of(req.send().await.unwrap()).await
    }

    async fn post_json(
        http: &reqwest::Client,
        url: &str,
        body: Value,
    ) -> (StatusCode, HeaderMap, Value) {
        let resp = http
            .post(url)
            .header(header::CONTENT_TYPE.as_str(), "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        json_of(resp).await
    }

    /// Every item of `endpoint`, following `next` from the first page.
    async fn walk_next(
        http: &reqwest::Client,
        emu: &RunningSpotify,
        token: &str,
        endpoint: &str,
        limit: Option<usize>,
    ) -> Vec<Value> {
        let mut url = match limit {
            Some(l) => format!("{}/{endpoint}?limit={l}", emu.api_url()),
            None => format!("{}/{endpoint}", emu.api_url()),
        };
        let mut items = Vec::new();
        loop {
            let (status, _, page) = get(http, &url, Some(token)).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert_eq!(page["offset"].as_u64().unwrap() as usize, items.len());
            assert_eq!(
                page["limit"].as_u64().unwrap() as usize,
                limit.unwrap_or(DEFAULT_LIMIT)
            );
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => url = next.to_owned(),
                None => {
                    assert_eq!(page["total"].as_u64().unwrap() as usize, items.len());
                    return items;
                }
            }
        }
    }

    fn is_base62_id(id: &str) -> bool {
        id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    #[test]
    fn generation_is_deterministic_and_consistent() {
        let scale = SpotifyScale::default();
        let data = SpotifyData::generate(7, &scale);
        assert_eq!(data, SpotifyData::generate(7, &scale));
        assert_ne!(data.artists, SpotifyData::generate(8, &scale).artists);
        assert_eq!(data.artists.len(), 200);
        assert_eq!(data.albums.len(), 300);
        assert_eq!(data.tracks.len(), 1500);
        assert_eq!(data.playlists.len(), 25);

        let artists: HashMap<&str, &Artist> =
            data.artists.iter().map(|a| (a.id.as_str(), a)).collect();
        let albums: HashMap<&str, &Album> =
            data.albums.iter().map(|a| (a.id.as_str(), a)).collect();
        let tracks: HashMap<&str, &Track> =
            data.tracks.iter().map(|t| (t.id.as_str(), t)).collect();
        assert_eq!(artists.len(), data.artists.len(), "artist ids are unique");
        assert_eq!(albums.len(), data.albums.len(), "album ids are unique");
        assert_eq!(tracks.len(), data.tracks.len(), "track ids are unique");
        for a in &data.artists {
            assert!(is_base62_id(&a.id), "{}", a.id);
            assert_eq!(a.uri, format!("spotify:artist:{}", a.id));
            assert_eq!(a.kind, "artist");
            assert!(a.popularity <= 100 && a.genres.len() <= 3);
        }
        let mut per_album: HashMap<&str, u32> = HashMap::new();
        for t in &data.tracks {
            assert!(is_base62_id(&t.id));
            let album = albums[t.album.id.as_str()];
            assert_eq!(album.name, t.album.name);
            *per_album.entry(&t.album.id).or_default() += 1;
            assert!(t.track_number >= 1 && t.track_number <= album.total_tracks);
            assert!(!t.artists.is_empty());
            for a in &t.artists {
                assert_eq!(artists[a.id.as_str()].name, a.name);
            }
        }
        let mut precisions = HashSet::new();
        for a in &data.albums {
            assert!(is_base62_id(&a.id));
            assert_eq!(per_album.get(a.id.as_str()).copied(), Some(a.total_tracks));
            assert!(!a.artists.is_empty());
            for r in &a.artists {
                assert_eq!(artists[r.id.as_str()].name, r.name);
            }
            match a.release_date_precision {
                ReleaseDatePrecision::Year => {
                    assert!(a.release_date.len() == 4 && a.release_date.parse::<i32>().is_ok())
                }
                ReleaseDatePrecision::Day => {
                    assert!(NaiveDate::parse_from_str(&a.release_date, "%Y-%m-%d").is_ok())
                }
            }
            precisions.insert(a.release_date_precision);
        }
        assert_eq!(precisions.len(), 2, "both date precisions occur");
        for p in &data.playlists {
            assert!(is_base62_id(&p.id));
            assert_eq!(p.tracks.total, 40);
            assert_eq!(p.tracks.items.len(), 40);
            let ids: HashSet<&str> = p.tracks.items.iter().map(|i| i.track.id.as_str()).collect();
            assert_eq!(ids.len(), 40, "no track twice in a playlist");
            for w in p.tracks.items.windows(2) {
                assert!(w[0].added_at <= w[1].added_at);
            }
            for item in &p.tracks.items {
                let t = tracks[item.track.id.as_str()];
                assert_eq!(item.track.name, t.name);
                assert_eq!(item.track.album.id, t.album.id);
                let artist_ids: Vec<&str> = t.artists.iter().map(|a| a.id.as_str()).collect();
                let item_artists: Vec<&str> =
                    item.track.artists.iter().map(|a| a.id.as_str()).collect();
                assert_eq!(artist_ids, item_artists);
                assert!(item.added_at.starts_with("2023-") || item.added_at.starts_with("2024-"));
                assert!(
                    NaiveDateTime::parse_from_str(&item.added_at, "%Y-%m-%dT%H:%M:%SZ").is_ok()
                );
            }
        }
        // Records do not depend on how many others there are.
        let smaller = SpotifyData::generate(7, &small());
        assert_eq!(smaller.artists[..], data.artists[..60]);
    }

    #[test]
    fn epochs_change_popularity_and_followers_but_no_ids() {
        let data = SpotifyData::generate(42, &SpotifyScale::default());
        let e0 = data.at_epoch(0);
        assert_eq!(e0.artists, data.artists);
        assert_eq!(e0.albums, data.albums);
        assert_eq!(e0.playlists, data.playlists);
        assert_eq!(data.at_epoch(3), data.at_epoch(3));
        let mut previous = e0;
        for epoch in 1..=30 {
            let now = data.at_epoch(epoch);
            let mut changed_artists = 0;
            for (a, b) in previous.artists.iter().zip(&now.artists) {
                assert_eq!(
                    (&a.id, &a.name, &a.genres, &a.uri),
                    (&b.id, &b.name, &b.genres, &b.uri)
                );
                if a != b {
                    changed_artists += 1;
                    // Both change together; followers only grow.
                    assert_ne!(a.popularity, b.popularity);
                    assert!(b.followers.total > a.followers.total);
                }
                assert!(b.popularity <= 100);
            }
            let mut changed_albums = 0;
            for (a, b) in previous.albums.iter().zip(&now.albums) {
                assert_eq!(
                    Album {
                        popularity: b.popularity,
                        ..a.clone()
                    },
                    *b
                );
                changed_albums += usize::from(a.popularity != b.popularity);
            }
            // ~30 % of 200 artists and 300 albums.
            assert!(
                (35..=90).contains(&changed_artists),
                "{epoch}: {changed_artists}"
            );
            assert!(
                (55..=130).contains(&changed_albums),
                "{epoch}: {changed_albums}"
            );
            assert_eq!(now.tracks, data.tracks);
            for (a, b) in previous.playlists.iter().zip(&now.playlists) {
                let old = a.tracks.items.len();
                let new = b.tracks.items.len();
                assert!(
                    (old + 1..=old + 3).contains(&new),
                    "{epoch}: {old} -> {new}"
                );
                assert_eq!(b.tracks.total as usize, new);
                assert_eq!(b.tracks.items[..old], a.tracks.items[..]);
                assert_ne!(a.snapshot_id, b.snapshot_id);
                let day = epoch_day(epoch).format("%Y-%m-%d").to_string();
                for item in &b.tracks.items[old..] {
                    assert!(item.added_at.starts_with(&day), "{} {day}", item.added_at);
                    assert!(item.added_at > a.tracks.items[old - 1].added_at);
                }
                assert_eq!((&a.id, &a.name, &a.owner), (&b.id, &b.name, &b.owner));
            }
            previous = now;
        }
    }

    #[test]
    fn last_change_never_repeats_an_offset() {
        for index in 0..50 {
            let mut previous = 0;
            for epoch in 1..=300 {
                let last = last_change(1, D_ARTIST_CHANGE, index, epoch);
                assert!(last <= epoch && last >= previous);
                if last != previous {
                    assert_eq!(last, epoch);
                    assert!(last - previous <= MAX_GAP);
                }
                previous = last;
            }
        }
    }

    #[test]
    fn faults_json_defaults() {
        let f: SpotifyFaults = serde_json::from_str(r#"{"rate_limit_next": 2}"#).unwrap();
        assert_eq!(
            f,
            SpotifyFaults {
                rate_limit_next: 2,
                ..SpotifyFaults::default()
            }
        );
        assert_eq!(f.retry_after_secs, 1);
        assert_eq!(
            serde_json::from_str::<SpotifyFaults>("{}").unwrap(),
            SpotifyFaults::default()
        );
    }

    #[tokio::test]
    async fn paging_walks_every_record_once() {
        let emu = emulator(SpotifyConfig {
            scale: small(),
            ..SpotifyConfig::default()
        })
        .await;
        let http = reqwest::Client::new();
        let token = grant(&http, &emu).await;
        let data = emu.data();

        // Via `next`, default and maximal page sizes.
        for limit in [None, Some(50), Some(7)] {
            let items = walk_next(&http, &emu, &token, "artists", limit).await;
            let got: Vec<Artist> = serde_json::from_value(Value::Array(items)).unwrap();
            assert_eq!(got, data.artists, "{limit:?}");
        }
        let got: Vec<Album> = serde_json::from_value(Value::Array(
            walk_next(&http, &emu, &token, "albums", Some(50)).await,
        ))
        .unwrap();
        assert_eq!(got, data.albums);
        let got: Vec<Track> = serde_json::from_value(Value::Array(
            walk_next(&http, &emu, &token, "tracks", Some(50)).await,
        ))
        .unwrap();
        assert_eq!(got, data.tracks);
        let got: Vec<Playlist> = serde_json::from_value(Value::Array(
            walk_next(&http, &emu, &token, "playlists", Some(3)).await,
        ))
        .unwrap();
        assert_eq!(got, data.playlists);

        // Via `offset`, until a page is short.
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let url = format!("{}/artists?offset={offset}&limit=25", emu.api_url());
            let (status, _, page) = get(&http, &url, Some(&token)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(page["total"], 60);
            let items = page["items"].as_array().unwrap();
            seen.extend(items.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
            if offset > 0 {
                assert_eq!(
                    page["previous"].as_str().unwrap(),
                    format!("{}/artists?offset={}&limit=25", emu.api_url(), offset - 25)
                );
            } else {
                assert!(page["previous"].is_null());
            }
            if items.len() < 25 {
                assert!(page["next"].is_null());
                break;
            }
            offset += 25;
        }
        let want: Vec<String> = data.artists.iter().map(|a| a.id.clone()).collect();
        assert_eq!(seen, want);
        // Past the end: an empty page.
        let (status, _, page) = get(
            &http,
            &format!("{}/artists?offset=500", emu.api_url()),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["items"], json!([]));
        assert!(page["next"].is_null());

        // The artist page shape.
        let (_, headers, page) = get(
            &http,
            &format!("{}/artists?limit=1", emu.api_url()),
            Some(&token),
        )
        .await;
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let keys: Vec<&str> = page
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want_keys = [
            "href", "items", "limit", "offset", "total", "next", "previous",
        ];
        want_keys.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want_keys);
        assert_eq!(
            page["href"],
            format!("{}/artists?offset=0&limit=1", emu.api_url())
        );
        let artist = &page["items"][0];
        assert_eq!(artist["type"], "artist");
        assert!(artist["followers"]["total"].is_u64());
        emu.stop().await;
    }

    #[tokio::test]
    async fn token_grant_basic_and_form() {
        let emu = default_emulator().await;
        let http = reqwest::Client::new();
        let form_type = (
            header::CONTENT_TYPE.as_str(),
            "application/x-www-form-urlencoded",
        );

        let resp = http
            .post(emu.token_url())
            .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
            .header(form_type.0, form_type.1)
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        let (status, headers, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body.as_object().unwrap().len(), 3);
        let basic_token = body["access_token"].as_str().unwrap().to_owned();

        let resp = http
            .post(emu.token_url())
            .header(form_type.0, form_type.1)
            .body(format!(
                "grant_type=client_credentials&client_id={DEFAULT_CLIENT_ID}&client_secret={DEFAULT_CLIENT_SECRET}"
            ))
            .send()
            .await
            .unwrap();
        let (status, _, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let form_token = body["access_token"].as_str().unwrap().to_owned();
        assert_ne!(basic_token, form_token);
        for token in [&basic_token, &form_token] {
            let (status, _, _) =
                get(&http, &format!("{}/tracks", emu.api_url()), Some(token)).await;
            assert_eq!(status, StatusCode::OK);
        }

        // Wrong secret (Basic, then form), no credentials: 401 invalid_client.
        let resp = http
            .post(emu.token_url())
            .basic_auth(DEFAULT_CLIENT_ID, Some("nope"))
            .header(form_type.0, form_type.1)
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        let (status, headers, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({ "error": "invalid_client" }));
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        for form in [
            format!("grant_type=client_credentials&client_id={DEFAULT_CLIENT_ID}&client_secret=x"),
            "grant_type=client_credentials".to_owned(),
        ] {
            let resp = http
                .post(emu.token_url())
                .header(form_type.0, form_type.1)
                .body(form)
                .send()
                .await
                .unwrap();
            let (status, _, body) = json_of(resp).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body, json!({ "error": "invalid_client" }));
        }

        // Wrong grant type: 400 unsupported_grant_type.
        let resp = http
            .post(emu.token_url())
            .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
            .header(form_type.0, form_type.1)
            .body("grant_type=password")
            .send()
            .await
            .unwrap();
        let (status, _, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({ "error": "unsupported_grant_type" }));

        let stats = emu.stats();
        assert_eq!(stats.token_grants, 2);
        assert_eq!(stats.token_rejections, 4);
        emu.stop().await;
    }

    #[tokio::test]
    async fn data_needs_a_valid_token() {
        let emu = emulator(SpotifyConfig {
            scale: small(),
            token_lifetime_secs: 1,
            ..SpotifyConfig::default()
        })
        .await;
        let http = reqwest::Client::new();
        let url = format!("{}/artists", emu.api_url());

        let (status, headers, body) = get(&http, &url, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({ "error": { "status": 401, "message": "No token provided" } })
        );
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        let (status, _, body) = get(&http, &url, Some("not-a-token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["message"], "Invalid access token");

        // Wall-clock expiry.
        let token = grant(&http, &emu).await;
        let (status, _, _) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (status, _, body) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({ "error": { "status": 401, "message": "The access token expired" } })
        );

        // Forced expiry from the handle and over HTTP.
        let token = grant(&http, &emu).await;
        emu.expire_tokens();
        let (status, _, body) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["message"], "The access token expired");

        let stats = emu.stats();
        assert_eq!(stats.unauthorized, 4);
        assert_eq!(stats.expired_tokens, 2);
        assert_eq!(stats.requests_to("artists"), 5);
        assert_eq!(stats.ok_from("artists"), 1);
        emu.stop().await;
    }

    #[tokio::test]
    async fn tokens_die_after_n_requests() {
        let emu = emulator(SpotifyConfig {
            scale: small(),
            ..SpotifyConfig::default()
        })
        .await;
        emu.set_faults(SpotifyFaults {
            expire_tokens_after_requests: 3,
            ..SpotifyFaults::default()
        });
        let http = reqwest::Client::new();

        // A client that refreshes its token on 401 walks all albums (80, 8 pages of 10).
        let mut token = grant(&http, &emu).await;
        let mut url = format!("{}/albums?limit=10", emu.api_url());
        let mut ids = Vec::new();
        let mut refreshes = 0;
        loop {
            let (status, _, page) = get(&http, &url, Some(&token)).await;
            if status == StatusCode::UNAUTHORIZED {
                assert_eq!(page["error"]["message"], "The access token expired");
                token = grant(&http, &emu).await;
                refreshes += 1;
                continue;
            }
            assert_eq!(status, StatusCode::OK);
            ids.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["id"].clone()),
            );
            match page["next"].as_str() {
                Some(next) => url = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(ids.len(), 80);
        // 8 pages, 3 per token: tokens die after pages 3 and 6.
        assert_eq!(refreshes, 2);
        let stats = emu.stats();
        assert_eq!(stats.token_grants, 3);
        assert_eq!(stats.expired_tokens, 2);
        assert_eq!(stats.requests_to("albums"), 10);
        assert_eq!(stats.ok_from("albums"), 8);
        emu.stop().await;
    }

    #[tokio::test]
    async fn rate_limit_answers_429_with_retry_after() {
        let emu = emulator(SpotifyConfig {
            scale: small(),
            ..SpotifyConfig::default()
        })
        .await;
        let http = reqwest::Client::new();
        let token = grant(&http, &emu).await;
        let url = format!("{}/tracks", emu.api_url());

        // Over HTTP: two 429s, Retry-After 1.
        let (status, _, _) = post_json(
            &http,
            &format!("{}/admin/faults", emu.base_url),
            json!({ "rate_limit_next": 2 }),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, headers, body) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(
            body,
            json!({ "error": { "status": 429, "message": "API rate limit exceeded" } })
        );
        // Retrying at once is counted as not backing off.
        let (status, _, _) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(emu.stats().early_retries, 1);
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let (status, _, _) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        let stats = emu.stats();
        assert_eq!((stats.rate_limited, stats.early_retries), (2, 1));
        assert_eq!(emu.faults().rate_limit_next, 0);

        // Retry-After: 0.
        emu.set_faults(SpotifyFaults {
            rate_limit_next: 1,
            retry_after_secs: 0,
            ..SpotifyFaults::default()
        });
        let (status, headers, _) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "0");
        let (status, _, _) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(emu.stats().early_retries, 1);

        // Injected server errors.
        emu.set_faults(SpotifyFaults {
            error_next: 1,
            error_status: 500,
            ..SpotifyFaults::default()
        });
        let (status, _, body) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["status"], 500);
        emu.set_faults(SpotifyFaults {
            error_next: 1,
            ..SpotifyFaults::default()
        });
        let (status, _, _) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, _, _) = get(&http, &url, Some(&token)).await;
        assert_eq!(status, StatusCode::OK);

        let (status, _, stats) = get(&http, &format!("{}/admin/stats", emu.base_url), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stats["rate_limited"], 3);
        assert_eq!(stats["injected_errors"], 2);
        assert_eq!(stats["token_grants"], 1);
        assert_eq!(stats["requests"]["tracks"], 8);
        assert_eq!(stats["ok"]["tracks"], 3);
        emu.stop().await;
    }

    #[tokio::test]
    async fn bad_paging_parameters_are_400() {
        let emu = emulator(SpotifyConfig {
            scale: small(),
            ..SpotifyConfig::default()
        })
        .await;
        let http = reqwest::Client::new();
        let token = grant(&http, &emu).await;
        for (query, message) in [
            ("limit=51", "Invalid limit"),
            ("limit=0", "Invalid limit"),
            ("limit=ten", "Invalid limit"),
            ("offset=-1", "Invalid offset"),
        ] {
            let (status, _, body) = get(
                &http,
                &format!("{}/albums?{query}", emu.api_url()),
                Some(&token),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(
                body,
                json!({ "error": { "status": 400, "message": message } }),
                "{query}"
            );
        }
        let (status, _, page) = get(
            &http,
            &format!("{}/albums?limit=50", emu.api_url()),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["items"].as_array().unwrap().len(), 50);
        emu.stop().await;
    }

    #[tokio::test]
    async fn epoch_changes_what_is_served() {
        let emu = emulator(SpotifyConfig {
            scale: small(),
            ..SpotifyConfig::default()
        })
        .await;
        let http = reqwest::Client::new();
        let token = grant(&http, &emu).await;
        assert_eq!(emu.epoch(), 0);
        let artists0: Vec<Artist> = serde_json::from_value(Value::Array(
            walk_next(&http, &emu, &token, "artists", Some(50)).await,
        ))
        .unwrap();
        let playlists0: Vec<Playlist> = serde_json::from_value(Value::Array(
            walk_next(&http, &emu, &token, "playlists", Some(50)).await,
        ))
        .unwrap();

        let (status, _, body) = post_json(
            &http,
            &format!("{}/admin/epoch", emu.base_url),
            json!({ "epoch": 1 }),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "epoch": 1 }));
        assert_eq!(emu.epoch(), 1);
        let artists1: Vec<Artist> = serde_json::from_value(Value::Array(
            walk_next(&http, &emu, &token, "artists", Some(50)).await,
        ))
        .unwrap();
        let playlists1: Vec<Playlist> = serde_json::from_value(Value::Array(
            walk_next(&http, &emu, &token, "playlists", Some(50)).await,
        ))
        .unwrap();
        assert_eq!(artists1, emu.data().artists_at(1));
        assert_eq!(playlists1, emu.data().playlists_at(1));

        let ids = |a: &[Artist]| {
            a.iter()
                .map(|a| (a.id.clone(), a.name.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&artists0), ids(&artists1));
        let changed = artists0
            .iter()
            .zip(&artists1)
            .filter(|(a, b)| a.popularity != b.popularity)
            .count();
        assert!(changed > 0 && changed < artists0.len(), "{changed}");

        for (p0, p1) in playlists0.iter().zip(&playlists1) {
            assert_eq!(p0.id, p1.id);
            let old = p0.tracks.items.len();
            assert!(p1.tracks.items.len() > old);
            assert_eq!(p1.tracks.items[..old], p0.tracks.items[..]);
            let last0 = &p0.tracks.items[old - 1].added_at;
            assert!(p1.tracks.items[old..].iter().all(|i| &i.added_at > last0));
        }

        // The handle sets it too; too large an epoch is refused.
        emu.set_epoch(0).unwrap();
        let (_, _, page) = get(
            &http,
            &format!("{}/artists?limit=50", emu.api_url()),
            Some(&token),
        )
        .await;
        let first: Vec<Artist> = serde_json::from_value(page["items"].clone()).unwrap();
        assert_eq!(first[..], artists0[..50]);
        assert_eq!(
            emu.set_epoch(MAX_EPOCH + 1),
            Err(EpochTooLarge(MAX_EPOCH + 1))
        );
        let (status, _, _) = post_json(
            &http,
            &format!("{}/admin/epoch", emu.base_url),
            json!({ "epoch": MAX_EPOCH + 1 }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (_, _, body) = get(&http, &format!("{}/admin/epoch", emu.base_url), None).await;
        assert_eq!(body, json!({ "epoch": 0 }));
        emu.stop().await;
    }
}
