//! Deterministic generator of DeFtunes data: the songs table and the API's users and sessions.
//!
//! The same seed and [`Scale`] always give byte-identical data (ChaCha8, one independent stream
//! per kind of record, so changing the number of sessions does not change the songs or users).
//! Serialization follows the API contract (`pipelines/deftunes/README.md`): field names
//! and order, timestamps as `%Y-%m-%dT%H:%M:%S%.6f` without a zone, `liked_since: null` when a
//! song is not liked.

use std::collections::HashSet;

use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Seed of the generator when none is given (`deftunes --seed`, the api-emulator function).
pub const DEFAULT_SEED: u64 = 42;

/// How much data to generate, and over which window (inclusive dates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scale {
    pub songs: usize,
    pub users: usize,
    pub sessions: usize,
    pub start: NaiveDate,
    /// Inclusive.
    pub end: NaiveDate,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            songs: 10_000,
            users: 2_000,
            sessions: 20_000,
            start: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or(NaiveDate::MIN),
            end: NaiveDate::from_ymd_opt(2020, 3, 31).unwrap_or(NaiveDate::MIN),
        }
    }
}

/// One row of `deftunes.songs` (Million Song Dataset track metadata), columns in table order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Song {
    pub track_id: String,
    pub title: String,
    pub song_id: String,
    pub release: String,
    pub artist_id: String,
    pub artist_mbid: String,
    pub artist_name: String,
    pub duration: f32,
    pub artist_familiarity: f32,
    pub artist_hotttnesss: f32,
    pub year: i32,
    pub track_7digitalid: i32,
    pub shs_perf: i32,
    pub shs_work: i32,
}

/// A `/users` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub user_id: String,
    pub user_name: String,
    pub user_lastname: String,
    /// latitude, longitude, place name, ISO country code, IANA time zone.
    pub user_location: [String; 5],
    #[serde(with = "timestamp")]
    pub user_since: NaiveDateTime,
}

/// One purchased song of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionItem {
    /// A Million Song Dataset **track** id: matches `songs.track_id`.
    pub song_id: String,
    pub song_name: String,
    pub artist_id: String,
    pub artist_name: String,
    pub price: f64,
    pub currency: String,
    pub liked: bool,
    #[serde(with = "timestamp_opt")]
    pub liked_since: Option<NaiveDateTime>,
}

/// A `/sessions` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub session_id: String,
    pub session_items: Vec<SessionItem>,
    pub user_agent: String,
    #[serde(with = "timestamp")]
    pub session_start_time: NaiveDateTime,
}

/// All generated data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub songs: Vec<Song>,
    /// Sorted by `user_since`.
    pub users: Vec<User>,
    /// Sorted by `session_start_time`.
    pub sessions: Vec<Session>,
}

/// The API's timestamp format: ISO 8601, always 6 fractional digits, no zone.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";
/// Accepted on input (any number of fractional digits, or none).
const TIMESTAMP_PARSE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// serde `with` module for `NaiveDateTime` in the API format.
pub mod timestamp {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&value.format(super::TIMESTAMP_FORMAT))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        NaiveDateTime::parse_from_str(&s, super::TIMESTAMP_PARSE_FORMAT)
            .map_err(serde::de::Error::custom)
    }
}

/// serde `with` module for `Option<NaiveDateTime>` in the API format (`null` for `None`).
pub mod timestamp_opt {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<NaiveDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.collect_str(&v.format(super::TIMESTAMP_FORMAT)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDateTime>, D::Error> {
        let s = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.map(|s| {
            NaiveDateTime::parse_from_str(&s, super::TIMESTAMP_PARSE_FORMAT)
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

impl Dataset {
    /// Generates the dataset. Deterministic: same `seed` and `scale` give identical data.
    pub fn generate(seed: u64, scale: &Scale) -> Dataset {
        let songs = Dataset::generate_songs(seed, scale.songs);
        let users = gen_users(&mut stream(seed, 2), scale);
        let sessions = gen_sessions(&mut stream(seed, 3), scale, &songs, &users);
        Dataset {
            songs,
            users,
            sessions,
        }
    }

    /// The songs of [`Dataset::generate`] alone (they depend on `seed` and their number only).
    pub fn generate_songs(seed: u64, songs: usize) -> Vec<Song> {
        gen_songs(&mut stream(seed, 1), songs)
    }

    /// Users whose `user_since` date is in `start..=end`.
    pub fn users_between(&self, start: NaiveDate, end: NaiveDate) -> &[User] {
        window(&self.users, start, end, |u| u.user_since)
    }

    /// Sessions whose `session_start_time` date is in `start..=end`.
    pub fn sessions_between(&self, start: NaiveDate, end: NaiveDate) -> &[Session] {
        window(&self.sessions, start, end, |s| s.session_start_time)
    }
}

fn window<T>(
    items: &[T],
    start: NaiveDate,
    end: NaiveDate,
    key: impl Fn(&T) -> NaiveDateTime,
) -> &[T] {
    let lo = items.partition_point(|x| key(x).date() < start);
    let hi = items.partition_point(|x| key(x).date() <= end);
    if lo < hi {
        &items[lo..hi]
    } else {
        &[]
    }
}

/// An independent ChaCha8 stream `n` of `seed` (one per kind of record).
pub(crate) fn stream(seed: u64, n: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(n);
    rng
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// `prefix` + 16 uppercase alphanumerics, unique within `seen`.
pub(crate) fn msd_id(rng: &mut ChaCha8Rng, prefix: &str, seen: &mut HashSet<String>) -> String {
    loop {
        let mut id = String::with_capacity(18);
        id.push_str(prefix);
        for _ in 0..16 {
            id.push(ALNUM[rng.random_range(0..ALNUM.len())] as char);
        }
        if seen.insert(id.clone()) {
            return id;
        }
    }
}

/// A version-4-format UUID string drawn from the seeded rng.
fn uuid4(rng: &mut ChaCha8Rng) -> String {
    let bytes: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    if items.is_empty() {
        return "";
    }
    items[rng.random_range(0..items.len())]
}

pub(crate) fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// Uniform instant in `[start 00:00, end+1 00:00)`, microsecond precision.
fn instant_in_window(rng: &mut ChaCha8Rng, start: NaiveDate, end: NaiveDate) -> NaiveDateTime {
    let from = start.and_time(NaiveTime::MIN);
    let until = end
        .checked_add_days(Days::new(1))
        .unwrap_or(end)
        .and_time(NaiveTime::MIN);
    let span_us = (until - from).num_microseconds().unwrap_or(0).max(1);
    let offset = rng.random_range(0..span_us);
    from.checked_add_signed(TimeDelta::microseconds(offset))
        .unwrap_or(from)
}

// ---------------------------------------------------------------------------------------------
// Word lists
// ---------------------------------------------------------------------------------------------

const ADJECTIVES: &[&str] = &[
    "Blue", "Broken", "Golden", "Silent", "Wild", "Electric", "Lonely", "Crimson", "Midnight",
    "Sweet", "Burning", "Hollow", "Velvet", "Frozen", "Restless", "Little", "Sacred", "Distant",
    "Neon", "Gentle", "Dark", "Bright", "Endless", "Savage", "Lucky", "Young", "Heavy", "Paper",
    "Secret", "Crazy",
];
const NOUNS: &[&str] = &[
    "Heart", "River", "Fire", "Road", "Dream", "Night", "Rain", "Moon", "City", "Shadow", "Love",
    "Train", "Summer", "Ocean", "Mirror", "Garden", "Storm", "Highway", "Angel", "Kingdom",
    "Window", "Thunder", "Babylon", "Nation", "Desert", "Radio", "Sky", "Memory", "Horizon",
    "Stranger", "Island", "Echo", "Ghost", "Diamond", "Morning", "Rose",
];
const PLURALS: &[&str] = &[
    "Wolves",
    "Kings",
    "Lovers",
    "Strangers",
    "Horses",
    "Saints",
    "Sparks",
    "Rebels",
    "Dreamers",
    "Ravens",
    "Pilots",
    "Brothers",
    "Sisters",
    "Machines",
    "Travelers",
    "Tigers",
];
const VERBS: &[&str] = &[
    "Dancing", "Running", "Waiting", "Falling", "Walking", "Singing", "Dreaming", "Flying",
    "Drifting", "Burning", "Crying", "Rolling",
];
const PREPOSITIONS: &[&str] = &["in", "on", "through", "under", "across", "beyond", "into"];
const ALBUM_WORDS: &[&str] = &[
    "Greatest Hits",
    "Live",
    "Sessions",
    "Anthology",
    "Collection",
    "Demos",
    "Remixes",
    "Volume 2",
    "Deluxe Edition",
    "Unplugged",
];
const FIRST_NAMES: &[&str] = &[
    "Elizabeth",
    "James",
    "Maria",
    "John",
    "Sofia",
    "Michael",
    "Emma",
    "David",
    "Olivia",
    "Daniel",
    "Ana",
    "Lucas",
    "Chloe",
    "Pierre",
    "Yuki",
    "Hiro",
    "Fatima",
    "Omar",
    "Ingrid",
    "Lars",
    "Priya",
    "Arjun",
    "Chen",
    "Mei",
    "Carlos",
    "Lucia",
    "Noah",
    "Mia",
    "Ethan",
    "Ava",
    "Liam",
    "Isabella",
    "Mateo",
    "Camila",
    "Jonas",
    "Lea",
    "Kwame",
    "Amara",
    "Dmitri",
    "Olga",
    "Sean",
    "Aoife",
    "Giulia",
    "Marco",
    "Tomas",
    "Elena",
    "Samuel",
    "Grace",
    "Victor",
    "Nina",
];
const LAST_NAMES: &[&str] = &[
    "Carey", "Smith", "Johnson", "Garcia", "Martin", "Brown", "Rossi", "Muller", "Dubois", "Silva",
    "Kowalski", "Nguyen", "Kim", "Tanaka", "Sato", "Patel", "Singh", "Haddad", "Larsen", "Novak",
    "Ivanov", "Murphy", "O'Brien", "Fischer", "Moreau", "Lopez", "Gonzalez", "Wilson", "Taylor",
    "Anderson", "Thomas", "Moore", "Jackson", "White", "Harris", "Clark", "Lewis", "Walker",
    "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell",
    "Mitchell", "Roberts",
];

/// (latitude, longitude, place name, ISO country code, IANA time zone)
const CITIES: &[(f64, f64, &str, &str, &str)] = &[
    (46.32313, -0.45877, "Niort", "FR", "Europe/Paris"),
    (48.85341, 2.3488, "Paris", "FR", "Europe/Paris"),
    (45.74846, 4.84671, "Lyon", "FR", "Europe/Paris"),
    (51.50853, -0.12574, "London", "GB", "Europe/London"),
    (53.48095, -2.23743, "Manchester", "GB", "Europe/London"),
    (53.34399, -6.26719, "Dublin", "IE", "Europe/Dublin"),
    (52.52437, 13.41053, "Berlin", "DE", "Europe/Berlin"),
    (48.13743, 11.57549, "Munich", "DE", "Europe/Berlin"),
    (52.37403, 4.88969, "Amsterdam", "NL", "Europe/Amsterdam"),
    (50.85045, 4.34878, "Brussels", "BE", "Europe/Brussels"),
    (40.4165, -3.70256, "Madrid", "ES", "Europe/Madrid"),
    (41.38879, 2.15899, "Barcelona", "ES", "Europe/Madrid"),
    (38.71667, -9.13333, "Lisbon", "PT", "Europe/Lisbon"),
    (41.89193, 12.51133, "Rome", "IT", "Europe/Rome"),
    (45.46427, 9.18951, "Milan", "IT", "Europe/Rome"),
    (47.37689, 8.54169, "Zurich", "CH", "Europe/Zurich"),
    (48.20849, 16.37208, "Vienna", "AT", "Europe/Vienna"),
    (52.22977, 21.01178, "Warsaw", "PL", "Europe/Warsaw"),
    (50.08804, 14.42076, "Prague", "CZ", "Europe/Prague"),
    (59.32938, 18.06871, "Stockholm", "SE", "Europe/Stockholm"),
    (59.91273, 10.74609, "Oslo", "NO", "Europe/Oslo"),
    (55.67594, 12.56553, "Copenhagen", "DK", "Europe/Copenhagen"),
    (60.16952, 24.93545, "Helsinki", "FI", "Europe/Helsinki"),
    (37.98376, 23.72784, "Athens", "GR", "Europe/Athens"),
    (41.01384, 28.94966, "Istanbul", "TR", "Europe/Istanbul"),
    (
        40.71427,
        -74.00597,
        "New York City",
        "US",
        "America/New_York",
    ),
    (42.35843, -71.05977, "Boston", "US", "America/New_York"),
    (41.85003, -87.65005, "Chicago", "US", "America/Chicago"),
    (29.76328, -95.36327, "Houston", "US", "America/Chicago"),
    (39.73915, -104.9847, "Denver", "US", "America/Denver"),
    (
        34.05223,
        -118.24368,
        "Los Angeles",
        "US",
        "America/Los_Angeles",
    ),
    (
        37.77493,
        -122.41942,
        "San Francisco",
        "US",
        "America/Los_Angeles",
    ),
    (47.60621, -122.33207, "Seattle", "US", "America/Los_Angeles"),
    (36.16589, -86.78444, "Nashville", "US", "America/Chicago"),
    (43.70011, -79.4163, "Toronto", "CA", "America/Toronto"),
    (45.50884, -73.58781, "Montreal", "CA", "America/Toronto"),
    (49.24966, -123.11934, "Vancouver", "CA", "America/Vancouver"),
    (
        19.42847,
        -99.12766,
        "Mexico City",
        "MX",
        "America/Mexico_City",
    ),
    (-23.5475, -46.63611, "Sao Paulo", "BR", "America/Sao_Paulo"),
    (
        -22.90642,
        -43.18223,
        "Rio de Janeiro",
        "BR",
        "America/Sao_Paulo",
    ),
    (
        -34.61315,
        -58.37723,
        "Buenos Aires",
        "AR",
        "America/Argentina/Buenos_Aires",
    ),
    (4.60971, -74.08175, "Bogota", "CO", "America/Bogota"),
    (-33.45694, -70.64827, "Santiago", "CL", "America/Santiago"),
    (35.6895, 139.69171, "Tokyo", "JP", "Asia/Tokyo"),
    (34.69374, 135.50218, "Osaka", "JP", "Asia/Tokyo"),
    (37.566, 126.9784, "Seoul", "KR", "Asia/Seoul"),
    (31.22222, 121.45806, "Shanghai", "CN", "Asia/Shanghai"),
    (22.27832, 114.17469, "Hong Kong", "HK", "Asia/Hong_Kong"),
    (1.28967, 103.85007, "Singapore", "SG", "Asia/Singapore"),
    (19.07283, 72.88261, "Mumbai", "IN", "Asia/Kolkata"),
    (12.97194, 77.59369, "Bengaluru", "IN", "Asia/Kolkata"),
    (25.07725, 55.30927, "Dubai", "AE", "Asia/Dubai"),
    (-33.86785, 151.20732, "Sydney", "AU", "Australia/Sydney"),
    (-37.814, 144.96332, "Melbourne", "AU", "Australia/Melbourne"),
    (-36.84853, 174.76349, "Auckland", "NZ", "Pacific/Auckland"),
    (
        -33.92584,
        18.42322,
        "Cape Town",
        "ZA",
        "Africa/Johannesburg",
    ),
    (6.45407, 3.39467, "Lagos", "NG", "Africa/Lagos"),
    (-1.28333, 36.81667, "Nairobi", "KE", "Africa/Nairobi"),
];

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn title(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..7) {
        0 => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
        1 => format!("{} of the {}", pick(rng, NOUNS), pick(rng, NOUNS)),
        2 => format!("The {}", pick(rng, NOUNS)),
        3 => format!(
            "{} {} the {}",
            pick(rng, VERBS),
            pick(rng, PREPOSITIONS),
            pick(rng, NOUNS)
        ),
        4 => format!("{} {}", pick(rng, NOUNS), pick(rng, NOUNS)),
        5 => format!("{} {} (Remix)", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
        _ => format!("{} {}", pick(rng, VERBS), pick(rng, ADJECTIVES)),
    }
}

fn album(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..5) {
        0 => pick(rng, ALBUM_WORDS).to_string(),
        1 => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, PLURALS)),
        2 => format!("{} of All {}s", pick(rng, NOUNS), pick(rng, NOUNS)),
        3 => format!("{}: {}", pick(rng, NOUNS), pick(rng, ALBUM_WORDS)),
        _ => format!("The {} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
    }
}

fn artist_name(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..5) {
        0 => format!("The {} {}", pick(rng, ADJECTIVES), pick(rng, PLURALS)),
        1 => format!("{} {}", pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES)),
        2 => format!("{} {}", pick(rng, NOUNS), pick(rng, PLURALS)),
        3 => format!(
            "{} {} & The {}",
            pick(rng, FIRST_NAMES),
            pick(rng, LAST_NAMES),
            pick(rng, PLURALS)
        ),
        _ => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS)),
    }
}

struct Artist {
    id: String,
    mbid: String,
    name: String,
    familiarity: f32,
    hotttnesss: f32,
}

fn gen_songs(rng: &mut ChaCha8Rng, n: usize) -> Vec<Song> {
    if n == 0 {
        return Vec::new();
    }
    let n_artists = (n / 5).max(1);
    let mut artist_ids = HashSet::with_capacity(n_artists);
    let artists: Vec<Artist> = (0..n_artists)
        .map(|_| {
            let id = msd_id(rng, "AR", &mut artist_ids);
            let mbid = if rng.random_bool(0.1) {
                String::new()
            } else {
                uuid4(rng)
            };
            let name = artist_name(rng);
            let familiarity: f64 = rng.random();
            // Hotness correlates with familiarity, stays within 0..1.
            let hotttnesss = (familiarity * rng.random_range(0.3..1.0)).clamp(0.0, 1.0);
            Artist {
                id,
                mbid,
                name,
                familiarity: round_to(familiarity, 7) as f32,
                hotttnesss: round_to(hotttnesss, 7) as f32,
            }
        })
        .collect();

    let mut track_ids = HashSet::with_capacity(n);
    let mut song_ids = HashSet::with_capacity(n);
    (0..n)
        .map(|_| {
            let artist = &artists[rng.random_range(0..artists.len())];
            let track_id = msd_id(rng, "TR", &mut track_ids);
            let song_id = msd_id(rng, "SO", &mut song_ids);
            let title = title(rng);
            let release = album(rng);
            let duration = round_to(rng.random_range(60.0..600.0), 5) as f32;
            let year = if rng.random_bool(0.4) {
                0
            } else {
                rng.random_range(1950..=2010)
            };
            let track_7digitalid = rng.random_range(1..=10_000_000);
            let shs_perf = if rng.random_bool(0.95) {
                -1
            } else {
                rng.random_range(1..=300_000)
            };
            let shs_work = if rng.random_bool(0.95) {
                0
            } else {
                rng.random_range(1..=30_000)
            };
            Song {
                track_id,
                title,
                song_id,
                release,
                artist_id: artist.id.clone(),
                artist_mbid: artist.mbid.clone(),
                artist_name: artist.name.clone(),
                duration,
                artist_familiarity: artist.familiarity,
                artist_hotttnesss: artist.hotttnesss,
                year,
                track_7digitalid,
                shs_perf,
                shs_work,
            }
        })
        .collect()
}

fn gen_users(rng: &mut ChaCha8Rng, scale: &Scale) -> Vec<User> {
    let mut users: Vec<User> = (0..scale.users)
        .map(|_| {
            let user_id = uuid4(rng);
            let user_name = pick(rng, FIRST_NAMES).to_string();
            let user_lastname = pick(rng, LAST_NAMES).to_string();
            let (lat, lon, place, cc, tz) = CITIES[rng.random_range(0..CITIES.len())];
            let lat = (lat + rng.random_range(-0.05..0.05)).clamp(-90.0, 90.0);
            let lon = (lon + rng.random_range(-0.05..0.05)).clamp(-180.0, 180.0);
            let user_location = [
                format!("{lat:.5}"),
                format!("{lon:.5}"),
                place.to_string(),
                cc.to_string(),
                tz.to_string(),
            ];
            let user_since = instant_in_window(rng, scale.start, scale.end);
            User {
                user_id,
                user_name,
                user_lastname,
                user_location,
                user_since,
            }
        })
        .collect();
    users.sort_by_key(|u| u.user_since);
    users
}

fn user_agent(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..6) {
        0 => format!(
            "Mozilla/5.0 (Windows NT {}) AppleWebKit/{}.{} (KHTML, like Gecko) Chrome/{}.0.{}.0 Safari/{}.{}",
            pick(rng, &["6.1", "6.2", "10.0", "11.0"]),
            rng.random_range(531..=537),
            rng.random_range(0..=36),
            rng.random_range(13..=120),
            rng.random_range(800..=899),
            rng.random_range(531..=537),
            rng.random_range(0..=36),
        ),
        1 => format!(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_{}_{}) AppleWebKit/{}.{} (KHTML, like Gecko) Version/{}.{} Safari/{}.{}",
            rng.random_range(5..=15),
            rng.random_range(0..=9),
            rng.random_range(531..=605),
            rng.random_range(0..=36),
            rng.random_range(4..=17),
            rng.random_range(0..=5),
            rng.random_range(531..=605),
            rng.random_range(0..=36),
        ),
        2 => {
            let rv = rng.random_range(3..=121);
            format!("Mozilla/5.0 (X11; Linux x86_64; rv:{rv}.0) Gecko/20100101 Firefox/{rv}.0")
        }
        3 => format!(
            "Mozilla/5.0 (iPhone; CPU iPhone OS {}_{} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{}.0 Mobile/15E148 Safari/604.1",
            rng.random_range(12..=17),
            rng.random_range(0..=6),
            rng.random_range(12..=17),
        ),
        4 => format!(
            "Mozilla/5.0 (Linux; Android {}; SM-G{}F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{}.0.0.0 Mobile Safari/537.36",
            rng.random_range(8..=14),
            rng.random_range(900..=999),
            rng.random_range(60..=120),
        ),
        _ => format!(
            "Opera/9.{}.(Windows NT {}; {}) Presto/2.9.{} Version/{}.00",
            rng.random_range(10..=99),
            pick(rng, &["5.1", "6.0", "6.1"]),
            pick(rng, &["en-US", "fr-FR", "de-DE", "es-ES", "it-IT"]),
            rng.random_range(160..=190),
            rng.random_range(10..=12),
        ),
    }
}

const LIKED_WITHIN_US: i64 = 3 * 365 * 24 * 3600 * 1_000_000;

fn gen_sessions(
    rng: &mut ChaCha8Rng,
    scale: &Scale,
    songs: &[Song],
    users: &[User],
) -> Vec<Session> {
    let mut starts: Vec<NaiveDateTime> = (0..scale.sessions)
        .map(|_| instant_in_window(rng, scale.start, scale.end))
        .collect();
    starts.sort_unstable();
    starts
        .into_iter()
        .map(|session_start_time| {
            // A user who already existed at that time, else the earliest user.
            let existing = users.partition_point(|u| u.user_since <= session_start_time);
            let user_id = match users.len() {
                0 => uuid4(rng),
                _ if existing == 0 => users[0].user_id.clone(),
                _ => users[rng.random_range(0..existing)].user_id.clone(),
            };
            let session_id = uuid4(rng);
            let n_items = if songs.is_empty() {
                0
            } else {
                rng.random_range(1..=5)
            };
            let session_items = (0..n_items)
                .map(|_| {
                    // Mild popularity skew towards the first songs.
                    let u: f64 = rng.random();
                    let idx = ((u.powf(1.5) * songs.len() as f64) as usize).min(songs.len() - 1);
                    let song = &songs[idx];
                    let price = f64::from(rng.random_range(30u32..=200)) / 100.0;
                    let liked = rng.random_bool(0.4);
                    let liked_since = if liked {
                        let after = TimeDelta::microseconds(rng.random_range(1..LIKED_WITHIN_US));
                        session_start_time.checked_add_signed(after)
                    } else {
                        None
                    };
                    SessionItem {
                        song_id: song.track_id.clone(),
                        song_name: song.title.clone(),
                        artist_id: song.artist_id.clone(),
                        artist_name: song.artist_name.clone(),
                        price,
                        currency: "USD".to_string(),
                        liked: liked_since.is_some(),
                        liked_since,
                    }
                })
                .collect();
            let user_agent = user_agent(rng);
            Session {
                user_id,
                session_id,
                session_items,
                user_agent,
                session_start_time,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn small() -> Scale {
        Scale {
            songs: 500,
            users: 200,
            sessions: 1_000,
            ..Scale::default()
        }
    }

    #[test]
    fn deterministic() {
        let a = Dataset::generate(42, &small());
        let b = Dataset::generate(42, &small());
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let c = Dataset::generate(43, &small());
        assert_ne!(a.songs, c.songs);
        assert_ne!(a.users, c.users);
        assert_ne!(a.sessions, c.sessions);
    }

    #[test]
    fn default_scale_sizes() {
        let s = Scale::default();
        assert_eq!((s.songs, s.users, s.sessions), (10_000, 2_000, 20_000));
        assert_eq!((s.start, s.end), (d(2020, 1, 1), d(2020, 3, 31)));
        let ds = Dataset::generate(7, &s);
        assert_eq!(ds.songs.len(), 10_000);
        assert_eq!(ds.users.len(), 2_000);
        assert_eq!(ds.sessions.len(), 20_000);
    }

    fn is_msd(id: &str, prefix: &str) -> bool {
        id.len() == 18
            && id.starts_with(prefix)
            && id[2..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    }

    fn is_uuid(id: &str) -> bool {
        id.len() == 36 && uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4)
    }

    #[test]
    fn songs_shape() {
        let scale = small();
        let ds = Dataset::generate(1, &scale);
        let mut tracks = HashSet::new();
        let mut artists: HashMap<&str, (&str, &str, f32, f32)> = HashMap::new();
        let mut unknown_year = 0;
        for s in &ds.songs {
            assert!(is_msd(&s.track_id, "TR"), "{}", s.track_id);
            assert!(is_msd(&s.song_id, "SO"), "{}", s.song_id);
            assert!(is_msd(&s.artist_id, "AR"), "{}", s.artist_id);
            assert!(s.artist_mbid.is_empty() || is_uuid(&s.artist_mbid));
            assert!(tracks.insert(s.track_id.as_str()), "duplicate track id");
            assert!((60.0..=600.0).contains(&s.duration));
            assert!((0.0..=1.0).contains(&s.artist_familiarity));
            assert!((0.0..=1.0).contains(&s.artist_hotttnesss));
            assert!(s.year == 0 || (1950..=2010).contains(&s.year));
            unknown_year += usize::from(s.year == 0);
            assert!(s.track_7digitalid > 0);
            assert!(s.shs_perf == -1 || s.shs_perf > 0);
            assert!(s.shs_work >= 0);
            assert!(!s.title.is_empty() && !s.release.is_empty() && !s.artist_name.is_empty());
            let a = (
                s.artist_mbid.as_str(),
                s.artist_name.as_str(),
                s.artist_familiarity,
                s.artist_hotttnesss,
            );
            assert_eq!(
                *artists.entry(&s.artist_id).or_insert(a),
                a,
                "artist not stable"
            );
        }
        assert!(artists.len() <= scale.songs / 5 && artists.len() > scale.songs / 10);
        assert!((100..300).contains(&unknown_year), "{unknown_year}");
    }

    #[test]
    fn users_and_sessions_shape() {
        let scale = small();
        let ds = Dataset::generate(3, &scale);
        let tracks: HashMap<&str, &Song> =
            ds.songs.iter().map(|s| (s.track_id.as_str(), s)).collect();
        assert!(ds
            .users
            .windows(2)
            .all(|w| w[0].user_since <= w[1].user_since));
        assert!(ds
            .sessions
            .windows(2)
            .all(|w| w[0].session_start_time <= w[1].session_start_time));
        let user_since: HashMap<&str, NaiveDateTime> = ds
            .users
            .iter()
            .map(|u| (u.user_id.as_str(), u.user_since))
            .collect();
        for u in &ds.users {
            assert!(is_uuid(&u.user_id));
            let d = u.user_since.date();
            assert!(d >= scale.start && d <= scale.end);
            let lat: f64 = u.user_location[0].parse().unwrap();
            let lon: f64 = u.user_location[1].parse().unwrap();
            assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon));
            assert_eq!(u.user_location[0].split('.').nth(1).unwrap().len(), 5);
            assert_eq!(u.user_location[3].len(), 2);
            assert!(u.user_location[4].contains('/'));
        }
        let (mut items, mut liked) = (0, 0);
        for s in &ds.sessions {
            assert!(is_uuid(&s.session_id));
            let since = user_since[s.user_id.as_str()];
            assert!(since <= s.session_start_time || s.user_id == ds.users[0].user_id);
            assert!((1..=5).contains(&s.session_items.len()));
            assert!(!s.user_agent.is_empty());
            for it in &s.session_items {
                items += 1;
                let song = tracks[it.song_id.as_str()];
                assert_eq!(it.song_name, song.title);
                assert_eq!(it.artist_id, song.artist_id);
                assert_eq!(it.artist_name, song.artist_name);
                assert!((0.30..=2.00).contains(&it.price), "{}", it.price);
                assert_eq!(it.price, (it.price * 100.0).round() / 100.0);
                assert_eq!(it.currency, "USD");
                assert_eq!(it.liked, it.liked_since.is_some());
                if let Some(ls) = it.liked_since {
                    liked += 1;
                    assert!(ls > s.session_start_time);
                    assert!(ls - s.session_start_time <= TimeDelta::days(3 * 366));
                }
            }
        }
        let ratio = liked as f64 / items as f64;
        assert!((0.3..0.5).contains(&ratio), "{ratio}");
    }

    #[test]
    fn window_filters_inclusive() {
        let ds = Dataset::generate(5, &small());
        let check = |start: NaiveDate, end: NaiveDate| {
            let want: Vec<&Session> = ds
                .sessions
                .iter()
                .filter(|s| {
                    let d = s.session_start_time.date();
                    d >= start && d <= end
                })
                .collect();
            let got: Vec<&Session> = ds.sessions_between(start, end).iter().collect();
            assert_eq!(got, want, "{start}..={end}");
            let want: Vec<&User> = ds
                .users
                .iter()
                .filter(|u| u.user_since.date() >= start && u.user_since.date() <= end)
                .collect();
            let got: Vec<&User> = ds.users_between(start, end).iter().collect();
            assert_eq!(got, want, "{start}..={end}");
        };
        check(d(2020, 1, 1), d(2020, 3, 31));
        check(d(2020, 1, 15), d(2020, 1, 15));
        check(d(2020, 2, 1), d(2020, 2, 29));
        check(d(2019, 1, 1), d(2020, 1, 1));
        check(d(2020, 3, 31), d(2021, 1, 1));
        check(d(2021, 1, 1), d(2021, 2, 1));
        assert!(ds.sessions_between(d(2020, 2, 2), d(2020, 2, 1)).is_empty());
        assert_eq!(
            ds.sessions_between(d(2000, 1, 1), d(2030, 1, 1)).len(),
            ds.sessions.len()
        );
        // A session's own date is a boundary hit on both sides.
        let s = &ds.sessions[ds.sessions.len() / 2];
        let day = s.session_start_time.date();
        assert!(ds.sessions_between(day, day).contains(s));
        let prev = day.pred_opt().unwrap();
        let next = day.succ_opt().unwrap();
        assert!(!ds.sessions_between(prev, prev).contains(s));
        assert!(!ds.sessions_between(next, next).contains(s));
    }

    fn assert_keys_in_order(json: &str, keys: &[&str]) {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), keys.len(), "{json}");
        let mut last = 0;
        for k in keys {
            let pos = json
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing in {json}"));
            assert!(pos >= last, "{k} out of order in {json}");
            last = pos;
        }
    }

    fn is_api_timestamp(s: &str) -> bool {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.6f").is_ok()
            && s.len() == 26
            && s.as_bytes()[10] == b'T'
            && s.as_bytes()[19] == b'.'
    }

    #[test]
    fn json_shape_matches_contract() {
        let ds = Dataset::generate(9, &small());
        let user = &ds.users[0];
        let json = serde_json::to_string(user).unwrap();
        assert_keys_in_order(
            &json,
            &[
                "user_id",
                "user_name",
                "user_lastname",
                "user_location",
                "user_since",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let loc = v["user_location"].as_array().unwrap();
        assert_eq!(loc.len(), 5);
        assert!(loc.iter().all(|x| x.is_string()));
        assert!(is_api_timestamp(v["user_since"].as_str().unwrap()));
        assert_eq!(serde_json::from_str::<User>(&json).unwrap(), *user);

        // A session with a liked and a not-liked item.
        let session = ds
            .sessions
            .iter()
            .find(|s| {
                s.session_items.iter().any(|i| i.liked) && s.session_items.iter().any(|i| !i.liked)
            })
            .unwrap();
        let json = serde_json::to_string(session).unwrap();
        assert_keys_in_order(
            &json,
            &[
                "user_id",
                "session_id",
                "session_items",
                "user_agent",
                "session_start_time",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(is_api_timestamp(v["session_start_time"].as_str().unwrap()));
        for item in v["session_items"].as_array().unwrap() {
            let obj = item.as_object().unwrap();
            assert_eq!(obj.len(), 8);
            assert!(item["price"].is_f64());
            if item["liked"].as_bool().unwrap() {
                assert!(is_api_timestamp(item["liked_since"].as_str().unwrap()));
            } else {
                assert!(item["liked_since"].is_null());
            }
        }
        let first_item = serde_json::to_string(&session.session_items[0]).unwrap();
        assert_keys_in_order(
            &first_item,
            &[
                "song_id",
                "song_name",
                "artist_id",
                "artist_name",
                "price",
                "currency",
                "liked",
                "liked_since",
            ],
        );
        assert!(json.contains("\"liked_since\":null"));
        assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), *session);

        // The exact contract example deserializes and re-serializes identically.
        let example = r#"{"user_id":"a3141825-3a8c-4968-a3af-5362011ef7d5","user_name":"Elizabeth","user_lastname":"Carey","user_location":["46.32313","-0.45877","Niort","FR","Europe/Paris"],"user_since":"2020-12-22T14:15:35.936090"}"#;
        let u: User = serde_json::from_str(example).unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), example);
        let example = r#"{"song_id":"TRCPHWV128F4228647","song_name":"Los Sabanales","artist_id":"ARRLMTZ1187B9AB6DD","artist_name":"Los Corraleros De Majagual","price":0.69,"currency":"USD","liked":false,"liked_since":null}"#;
        let i: SessionItem = serde_json::from_str(example).unwrap();
        assert_eq!(serde_json::to_string(&i).unwrap(), example);
    }

    #[test]
    fn timestamps_always_six_digits() {
        let t = d(2020, 1, 1).and_hms_opt(0, 0, 0).unwrap();
        let u = User {
            user_id: String::new(),
            user_name: String::new(),
            user_lastname: String::new(),
            user_location: Default::default(),
            user_since: t,
        };
        let json = serde_json::to_string(&u).unwrap();
        assert!(json.contains("\"user_since\":\"2020-01-01T00:00:00.000000\""));
    }

    #[test]
    fn tiny_and_empty_scales_do_not_panic() {
        for (songs, users, sessions) in [(0, 0, 0), (0, 0, 5), (1, 0, 3), (3, 1, 10)] {
            let scale = Scale {
                songs,
                users,
                sessions,
                start: d(2020, 1, 2),
                end: d(2020, 1, 1),
            };
            let ds = Dataset::generate(0, &scale);
            assert_eq!(ds.sessions.len(), sessions);
        }
    }
}
