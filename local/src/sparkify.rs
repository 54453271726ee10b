//! Deterministic generator of Sparkify raw data (the Udacity "Sparkify" warehouse exercise), landed
//! into a local lake directory the way the upstream systems put it in S3.
//!
//! * `landing_zone/song_data/<A>/<B>/<C>/<TRACK_ID>.json`: one Million Song Dataset document per
//!   song, where A, B, C are the 3rd, 4th and 5th characters of the track id.
//! * `landing_zone/log_data/<YYYY>/<MM>/<YYYY-MM-DD>-events.json`: the app's events of one (UTC)
//!   day, NDJSON, fields in the order of the original logs.
//!
//! The field types follow `pipelines/sparkify/pipeline.toml`: `ts` and `registration` are epoch
//! milliseconds (integers), `sessionId`, `itemInSession` and `status` integers, `length` a number,
//! `userId` a string (`""` for logged-out events).
//!
//! Most plays (`page == "NextSong"`) are of catalogue songs (`song == title`,
//! `artist == artist_name`, `length` within 0.5 s of `duration`). The others never match a song
//! (`|length - duration| < 1.0` with the same title and artist name): unknown songs, and near
//! misses built from a catalogue song, either with its title and artist but a length at least 3 s
//! away from every song of that title and artist, or with its title but an artist name that has
//! no song of that title. A few catalogue songs share title and artist name with another one
//! (different `song_id`, durations at least 3 s apart), so a play matches at most one song.
//!
//! The same seed and [`SparkifyScale`] always give byte-identical files (ChaCha8, one stream for
//! the songs, one for the users, one for the events).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use chrono::{Days, NaiveDate, NaiveTime};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::{msd_id, round_to, stream};

/// How much data to generate, and over which days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkifyScale {
    /// Song documents (catalogue size).
    pub songs: usize,
    /// App users (logged-in events carry one of their ids).
    pub users: usize,
    /// First day of events.
    pub start: NaiveDate,
    /// Number of days of events, one log file each.
    pub days: u32,
    /// Average sessions per day (each day draws 80%..120% of it).
    pub sessions_per_day: usize,
}

impl Default for SparkifyScale {
    /// 2,000 songs, 100 users, November 2018 (30 days), about 60 sessions a day.
    fn default() -> Self {
        SparkifyScale {
            songs: 2_000,
            users: 100,
            start: NaiveDate::from_ymd_opt(2018, 11, 1).unwrap_or(NaiveDate::MIN),
            days: 30,
            sessions_per_day: 60,
        }
    }
}

/// One `song_data` document (Million Song Dataset subset), fields in the files' order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SongDoc {
    /// The MSD track id ("TRABCEI128F424C983"): names the file, is not a field of the document.
    #[serde(skip)]
    pub track_id: String,
    pub num_songs: u32,
    pub artist_id: String,
    pub artist_latitude: Option<f64>,
    pub artist_longitude: Option<f64>,
    pub artist_location: String,
    pub artist_name: String,
    pub song_id: String,
    pub title: String,
    /// Seconds.
    pub duration: f64,
    /// 0 when unknown.
    pub year: i32,
}

impl SongDoc {
    /// `landing_zone/song_data/<A>/<B>/<C>/<TRACK_ID>.json`.
    pub fn key(&self) -> String {
        let c = |i: usize| self.track_id.get(i..i + 1).unwrap_or("_");
        format!(
            "{LANDING}/song_data/{}/{}/{}/{}.json",
            c(2),
            c(3),
            c(4),
            self.track_id
        )
    }
}

/// One app event (a line of a `log_data` file), fields in the logs' order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Set for `NextSong` only.
    pub artist: Option<String>,
    /// "Logged In" or "Logged Out".
    pub auth: String,
    pub first_name: Option<String>,
    pub gender: Option<String>,
    pub item_in_session: u32,
    pub last_name: Option<String>,
    /// Seconds; set for `NextSong` only.
    pub length: Option<f64>,
    /// "free" or "paid".
    pub level: String,
    pub location: Option<String>,
    pub method: String,
    pub page: String,
    /// Epoch milliseconds; `None` when logged out.
    pub registration: Option<i64>,
    pub session_id: i64,
    /// Set for `NextSong` only.
    pub song: Option<String>,
    pub status: u16,
    /// Epoch milliseconds.
    pub ts: i64,
    pub user_agent: Option<String>,
    /// An integer as a string; `""` when logged out.
    pub user_id: String,
}

/// All generated data.
#[derive(Debug, Clone, PartialEq)]
pub struct SparkifyData {
    pub songs: Vec<SongDoc>,
    /// One entry per day in order, events by session then item (ts within the day).
    pub days: Vec<(NaiveDate, Vec<Event>)>,
}

/// Counts computed from landed files by [`count_plays_in_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlayCounts {
    /// Song documents.
    pub songs: u64,
    /// Log lines (events).
    pub events: u64,
    /// Events with `page == "NextSong"`.
    pub next_song: u64,
    /// `NextSong` events with `song == title`, `artist == artist_name` and
    /// `|length - duration| < 1.0` for at least one song document.
    pub matched: u64,
    /// Distinct non-empty `userId` over all events.
    pub users: u64,
}

const LANDING: &str = "landing_zone";

impl SparkifyData {
    /// Generates the data. Deterministic: same `seed` and `scale` give identical data.
    pub fn generate(seed: u64, scale: &SparkifyScale) -> SparkifyData {
        let songs = gen_songs(&mut stream(seed, 1), scale.songs);
        let users = gen_users(&mut stream(seed, 2), scale);
        let days = gen_days(&mut stream(seed, 3), scale, &songs, users);
        SparkifyData { songs, days }
    }

    /// Writes every song document and every day's log under `<lake_root>/landing_zone/` and
    /// returns their keys (relative to `lake_root`, '/'-separated): songs first, then days in
    /// order. Existing files with the same keys are overwritten.
    pub fn land(&self, lake_root: &Path) -> io::Result<Vec<String>> {
        let mut keys = Vec::with_capacity(self.songs.len() + self.days.len());
        for song in &self.songs {
            let key = song.key();
            write_key(lake_root, &key, &serde_json::to_vec(song)?)?;
            keys.push(key);
        }
        for (day, events) in &self.days {
            let key = log_key(*day);
            let mut body = Vec::with_capacity(events.len() * 400);
            for e in events {
                serde_json::to_writer(&mut body, e)?;
                body.push(b'\n');
            }
            write_key(lake_root, &key, &body)?;
            keys.push(key);
        }
        Ok(keys)
    }

    /// Number of `NextSong` events.
    pub fn next_song_events(&self) -> u64 {
        self.days
            .iter()
            .flat_map(|(_, events)| events)
            .filter(|e| e.page == "NextSong")
            .count() as u64
    }
}

/// `landing_zone/log_data/<YYYY>/<MM>/<YYYY-MM-DD>-events.json`.
pub fn log_key(day: NaiveDate) -> String {
    format!(
        "{LANDING}/log_data/{}/{}-events.json",
        day.format("%Y/%m"),
        day.format("%Y-%m-%d")
    )
}

fn key_path(lake_root: &Path, key: &str) -> PathBuf {
    key.split('/')
        .fold(lake_root.to_path_buf(), |path, part| path.join(part))
}

fn write_key(lake_root: &Path, key: &str, body: &[u8]) -> io::Result<()> {
    let path = key_path(lake_root, key);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, body)
}

/// The independent count a test compares the star schema with: reads the landed raw files back
/// from disk (every `*.json` under `landing_zone/song_data` and `landing_zone/log_data`, not the
/// in-memory data) with untyped JSON, and counts `NextSong` events matching at least one song
/// document (`song == title`, `artist == artist_name`, `|length - duration| < 1.0`).
pub fn count_plays_in_files(lake_root: &Path) -> io::Result<PlayCounts> {
    let landing = lake_root.join(LANDING);
    let mut counts = PlayCounts::default();
    let mut durations: HashMap<(String, String), Vec<f64>> = HashMap::new();
    for path in json_files(&landing.join("song_data"))? {
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)
            .map_err(|e| invalid(&path, &e.to_string()))?;
        let field = |name: &str| {
            doc.get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| invalid(&path, &format!("no string {name}")))
        };
        let duration = doc
            .get("duration")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| invalid(&path, "no number duration"))?;
        durations
            .entry((field("title")?, field("artist_name")?))
            .or_default()
            .push(duration);
        counts.songs += 1;
    }
    let mut users = HashSet::new();
    for path in json_files(&landing.join("log_data"))? {
        let text = std::fs::read_to_string(&path)?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| invalid(&path, &format!("line {}: {e}", n + 1)))?;
            counts.events += 1;
            if let Some(user) = event.get("userId").and_then(|v| v.as_str()) {
                if !user.is_empty() && !users.contains(user) {
                    users.insert(user.to_string());
                }
            }
            if event.get("page").and_then(|v| v.as_str()) != Some("NextSong") {
                continue;
            }
            counts.next_song += 1;
            let song = event.get("song").and_then(|v| v.as_str());
            let artist = event.get("artist").and_then(|v| v.as_str());
            let length = event.get("length").and_then(serde_json::Value::as_f64);
            if let (Some(song), Some(artist), Some(length)) = (song, artist, length) {
                let candidates = durations.get(&(song.to_string(), artist.to_string()));
                if candidates.is_some_and(|ds| ds.iter().any(|d| (length - d).abs() < 1.0)) {
                    counts.matched += 1;
                }
            }
        }
    }
    counts.users = users.len() as u64;
    Ok(counts)
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// Every `*.json` file under `dir` (recursively, sorted); none when `dir` does not exist.
fn json_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T], default: T) -> T {
    if items.is_empty() {
        return default;
    }
    items[rng.random_range(0..items.len())]
}

/// Epoch milliseconds of `day` 00:00 UTC.
fn midnight_ms(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

// ---------------------------------------------------------------------------------------------
// Word lists
// ---------------------------------------------------------------------------------------------

/// Artist names with non-ASCII characters, quotes and commas (given to the first artists).
const SPECIAL_ARTISTS: &[&str] = &[
    "Björk",
    "Sigur Rós",
    "Earth, Wind & Fire",
    "\"Weird Al\" Yankovic",
    "Motörhead",
    "Crosby, Stills, Nash & Young",
    "Beyoncé",
    "坂本龍一",
];
/// Titles with non-ASCII characters, quotes and commas (given to the first songs).
const SPECIAL_TITLES: &[&str] = &[
    "Ça plane pour moi",
    "Hello, Goodbye",
    "Don't Stop \"Believin'\"",
    "Jóga",
    "Für Elise",
    "Smells Like \"Teen Spirit\", Live",
    "Déjà Vu",
    "Señorita",
    "Ænima",
    "Glósóli, \"Untitled\"",
];

const ADJECTIVES: &[&str] = &[
    "Blue", "Broken", "Golden", "Silent", "Wild", "Electric", "Lonely", "Crimson", "Midnight",
    "Sweet", "Burning", "Hollow", "Velvet", "Frozen", "Restless", "Little", "Sacred", "Distant",
    "Neon", "Gentle", "Dark", "Bright", "Endless", "Lucky", "Young", "Heavy", "Paper", "Secret",
];
const NOUNS: &[&str] = &[
    "Heart", "River", "Fire", "Road", "Dream", "Night", "Rain", "Moon", "City", "Shadow", "Love",
    "Train", "Summer", "Ocean", "Mirror", "Garden", "Storm", "Highway", "Angel", "Kingdom",
    "Window", "Thunder", "Nation", "Desert", "Radio", "Sky", "Memory", "Horizon", "Island", "Echo",
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
    "Ravens",
    "Pilots",
    "Brothers",
    "Sisters",
    "Machines",
    "Tigers",
];
const VERBS: &[&str] = &[
    "Dancing", "Running", "Waiting", "Falling", "Walking", "Singing", "Dreaming", "Flying",
];
/// Words of songs that are not in the catalogue (another vocabulary, so they rarely look alike).
const UNKNOWN_WORDS: &[&str] = &[
    "Lullaby",
    "Interlude",
    "Overture",
    "Reverie",
    "Nocturne",
    "Serenade",
    "Cascade",
    "Paradox",
    "Velocity",
    "Solstice",
    "Mosaic",
    "Satellite",
    "Tangerine",
    "Monsoon",
    "Carousel",
    "Ember",
];
const VERSIONS: &[&str] = &[
    "Radio Edit",
    "Acoustic",
    "Live",
    "Demo",
    "Extended Mix",
    "Remaster",
];
const UNKNOWN_ARTIST_FORMS: &[&str] = &["DJ", "MC", "Lil", "Big", "Young"];

/// (first name, gender)
const FIRST_NAMES: &[(&str, &str)] = &[
    ("Jacqueline", "F"),
    ("Layla", "F"),
    ("Kate", "F"),
    ("Chloe", "F"),
    ("Tegan", "F"),
    ("Lily", "F"),
    ("Aleena", "F"),
    ("Jayden", "M"),
    ("Kevin", "M"),
    ("Ryan", "M"),
    ("Jacob", "M"),
    ("Matthew", "M"),
    ("Mohammad", "M"),
    ("Aiden", "M"),
    ("Sara", "F"),
    ("Ava", "F"),
    ("Rylan", "M"),
    ("Harper", "F"),
    ("Wyatt", "M"),
    ("Avery", "F"),
    ("Renée", "F"),
    ("José", "M"),
];
const LAST_NAMES: &[&str] = &[
    "Lynch",
    "Griffin",
    "Harrell",
    "Cuevas",
    "Levine",
    "Koch",
    "Kirby",
    "Bell",
    "Arellano",
    "Smith",
    "Rodriguez",
    "Williams",
    "Scott",
    "O'Connor",
    "Hudson",
    "Jones",
    "Garrison",
    "Müller",
];
/// Sparkify's user locations (US metropolitan areas).
const USER_LOCATIONS: &[&str] = &[
    "San Jose-Sunnyvale-Santa Clara, CA",
    "Atlanta-Sandy Springs-Roswell, GA",
    "Lansing-East Lansing, MI",
    "Chicago-Naperville-Elgin, IL-IN-WI",
    "Tampa-St. Petersburg-Clearwater, FL",
    "New York-Newark-Jersey City, NY-NJ-PA",
    "Los Angeles-Long Beach-Anaheim, CA",
    "San Francisco-Oakland-Hayward, CA",
    "Portland-South Portland, ME",
    "Waterloo-Cedar Falls, IA",
    "Houston-The Woodlands-Sugar Land, TX",
    "Phoenix-Mesa-Scottsdale, AZ",
    "Seattle-Tacoma-Bellevue, WA",
    "Birmingham-Hoover, AL",
    "Detroit-Warren-Dearborn, MI",
    "Janesville-Beloit, WI",
    "Red Bluff, CA",
    "Eugene, OR",
    "Marinette, WI-MI",
    "Winston-Salem, NC",
];
/// Sparkify's user agents (some, as in the original logs, wrapped in literal quotes).
const USER_AGENTS: &[&str] = &[
    "\"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.143 Safari/537.36\"",
    "\"Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.143 Safari/537.36\"",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:31.0) Gecko/20100101 Firefox/31.0",
    "\"Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) Version/7.0 Mobile/11D257 Safari/9537.53\"",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:31.0) Gecko/20100101 Firefox/31.0",
    "\"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.78.2 (KHTML, like Gecko) Version/7.0.6 Safari/537.78.2\"",
    "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; WOW64; Trident/6.0)",
    "\"Mozilla/5.0 (Windows NT 6.3; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.125 Safari/537.36\"",
];
/// (artist_location, latitude, longitude)
const ARTIST_PLACES: &[(&str, f64, f64)] = &[
    ("Chicago, IL", 41.88415, -87.63241),
    ("London, England", 51.50632, -0.12714),
    ("Hamburg, Germany", 53.55334, 9.99245),
    ("Montréal, Québec, Canada", 45.51228, -73.55439),
    ("Nashville, TN", 36.16778, -86.77836),
    ("Los Angeles, CA", 34.05349, -118.24532),
    ("New York, NY", 40.71455, -74.00712),
    ("Reykjavík, Iceland", 64.13548, -21.89541),
    ("São Paulo, Brazil", -23.5475, -46.63611),
    ("Detroit, MI", 42.33168, -83.04792),
    ("Seattle, WA", 47.60356, -122.32944),
    ("Stockholm, Sweden", 59.33217, 18.06243),
    ("Kingston, Jamaica", 17.99702, -76.79358),
    ("Paris, France", 48.85692, 2.34121),
];

// ---------------------------------------------------------------------------------------------
// Songs
// ---------------------------------------------------------------------------------------------

fn catalogue_title(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..5) {
        0 => format!("{} {}", pick(rng, ADJECTIVES, ""), pick(rng, NOUNS, "")),
        1 => format!("{} of the {}", pick(rng, NOUNS, ""), pick(rng, NOUNS, "")),
        2 => format!("The {}", pick(rng, NOUNS, "")),
        3 => format!("{} {}", pick(rng, VERBS, ""), pick(rng, ADJECTIVES, "")),
        _ => format!("{} {}", pick(rng, NOUNS, ""), pick(rng, NOUNS, "")),
    }
}

fn catalogue_artist(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..3) {
        0 => format!(
            "The {} {}",
            pick(rng, ADJECTIVES, ""),
            pick(rng, PLURALS, "")
        ),
        1 => format!(
            "{} {}",
            pick(rng, FIRST_NAMES, ("", "")).0,
            pick(rng, LAST_NAMES, "")
        ),
        _ => format!("{} {}", pick(rng, NOUNS, ""), pick(rng, PLURALS, "")),
    }
}

fn unknown_title(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..2) {
        0 => format!(
            "{} ({})",
            pick(rng, UNKNOWN_WORDS, ""),
            pick(rng, VERSIONS, "")
        ),
        _ => format!(
            "{} {}",
            pick(rng, UNKNOWN_WORDS, ""),
            pick(rng, UNKNOWN_WORDS, "")
        ),
    }
}

fn unknown_artist(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{} {}",
        pick(rng, UNKNOWN_ARTIST_FORMS, ""),
        pick(rng, UNKNOWN_WORDS, "")
    )
}

struct Artist {
    id: String,
    name: String,
    location: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// Songs of one title and artist name keep durations at least this far apart.
const SAME_NAME_MIN_GAP: f64 = 3.0;
/// Every `DUPLICATE_EVERY`th song (at offset `DUPLICATE_EVERY / 2`) repeats the title and artist
/// of an earlier song, with another song id and duration.
const DUPLICATE_EVERY: usize = 100;

fn gen_songs(rng: &mut ChaCha8Rng, n: usize) -> Vec<SongDoc> {
    if n == 0 {
        return Vec::new();
    }
    let n_artists = (n / 4).max(1);
    let mut artist_ids = HashSet::with_capacity(n_artists);
    let artists: Vec<Artist> = (0..n_artists)
        .map(|i| {
            let id = msd_id(rng, "AR", &mut artist_ids);
            let name = match SPECIAL_ARTISTS.get(i) {
                Some(name) => name.to_string(),
                None => catalogue_artist(rng),
            };
            let (location, latitude, longitude) = match rng.random_range(0..10) {
                // As in the MSD: often no location at all, sometimes a place without coordinates.
                0..4 => (String::new(), None, None),
                4..6 => (
                    pick(rng, ARTIST_PLACES, ("", 0.0, 0.0)).0.to_string(),
                    None,
                    None,
                ),
                _ => {
                    let (place, lat, lon) = pick(rng, ARTIST_PLACES, ("", 0.0, 0.0));
                    (place.to_string(), Some(lat), Some(lon))
                }
            };
            Artist {
                id,
                name,
                location,
                latitude,
                longitude,
            }
        })
        .collect();

    let mut track_ids = HashSet::with_capacity(n);
    let mut song_ids = HashSet::with_capacity(n);
    let mut durations: HashMap<(String, String), Vec<f64>> = HashMap::new();
    let mut songs: Vec<SongDoc> = Vec::with_capacity(n);
    for i in 0..n {
        let track_id = msd_id(rng, "TR", &mut track_ids);
        let song_id = msd_id(rng, "SO", &mut song_ids);
        let (title, artist) = if i % DUPLICATE_EVERY == DUPLICATE_EVERY / 2 {
            // Same title and artist as an earlier song (MSD has such duplicates).
            let earlier = &songs[rng.random_range(0..i)];
            let artist = artists
                .iter()
                .find(|a| a.id == earlier.artist_id)
                .unwrap_or(&artists[0]);
            (earlier.title.clone(), artist)
        } else {
            let title = match SPECIAL_TITLES.get(i) {
                Some(t) => t.to_string(),
                None => catalogue_title(rng),
            };
            let artist = match i < SPECIAL_TITLES.len() {
                true => &artists[i % artists.len()],
                false => &artists[rng.random_range(0..artists.len())],
            };
            (title, artist)
        };
        let group = durations
            .entry((title.clone(), artist.name.clone()))
            .or_default();
        let far = |d: f64| group.iter().all(|g| (g - d).abs() >= SAME_NAME_MIN_GAP);
        let mut duration = round_to(rng.random_range(30.0..600.0), 5);
        for _ in 0..100 {
            if far(duration) {
                break;
            }
            duration = round_to(rng.random_range(30.0..600.0), 5);
        }
        if !far(duration) {
            let longest = group.iter().copied().fold(0.0, f64::max);
            duration = round_to(longest + SAME_NAME_MIN_GAP + rng.random_range(1.0..60.0), 5);
        }
        group.push(duration);
        let year = if rng.random_bool(0.4) {
            0
        } else {
            rng.random_range(1950..=2010)
        };
        songs.push(SongDoc {
            track_id,
            num_songs: 1,
            artist_id: artist.id.clone(),
            artist_latitude: artist.latitude,
            artist_longitude: artist.longitude,
            artist_location: artist.location.clone(),
            artist_name: artist.name.clone(),
            song_id,
            title,
            duration,
            year,
        });
    }
    songs
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

struct UserState {
    id: String,
    first_name: &'static str,
    gender: &'static str,
    last_name: &'static str,
    location: &'static str,
    user_agent: &'static str,
    registration: i64,
    paid: bool,
    /// From this day on, the user's next session upgrades (free) or downgrades (paid).
    change_on: Option<NaiveDate>,
    /// Epoch ms after the last event of the user's latest session.
    busy_until: i64,
}

fn gen_users(rng: &mut ChaCha8Rng, scale: &SparkifyScale) -> Vec<UserState> {
    let start_ms = midnight_ms(scale.start);
    let mut ids = HashSet::with_capacity(scale.users);
    let max_id = (scale.users as u64).saturating_mul(3).max(10);
    (0..scale.users)
        .map(|_| {
            let id = loop {
                let id = rng.random_range(2..=max_id + 1);
                if ids.insert(id) {
                    break id.to_string();
                }
            };
            let (first_name, gender) = pick(rng, FIRST_NAMES, ("", "F"));
            let paid = rng.random_bool(0.3);
            let change_on = if rng.random_bool(if paid { 0.1 } else { 0.35 }) {
                let offset = rng.random_range(0..scale.days.max(1));
                scale.start.checked_add_days(Days::new(u64::from(offset)))
            } else {
                None
            };
            // Registered during the 180 days before the window.
            let registration = start_ms - rng.random_range(3_600_000..180 * 86_400_000);
            UserState {
                id,
                first_name,
                gender,
                last_name: pick(rng, LAST_NAMES, ""),
                location: pick(rng, USER_LOCATIONS, ""),
                user_agent: pick(rng, USER_AGENTS, ""),
                registration,
                paid,
                change_on,
                busy_until: i64::MIN,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Share of plays of each kind (the rest are catalogue plays).
const UNKNOWN_PLAYS: f64 = 0.12;
const NEAR_MISS_LENGTH_PLAYS: f64 = 0.05;
const NEAR_MISS_ARTIST_PLAYS: f64 = 0.05;

/// What the plays are drawn from.
struct Catalogue<'a> {
    songs: &'a [SongDoc],
    durations: HashMap<(&'a str, &'a str), Vec<f64>>,
}

impl<'a> Catalogue<'a> {
    fn new(songs: &'a [SongDoc]) -> Self {
        let mut durations: HashMap<(&str, &str), Vec<f64>> = HashMap::new();
        for s in songs {
            durations
                .entry((s.title.as_str(), s.artist_name.as_str()))
                .or_default()
                .push(s.duration);
        }
        Catalogue { songs, durations }
    }

    fn has(&self, title: &str, artist: &str) -> bool {
        self.durations.contains_key(&(title, artist))
    }

    /// A song, skewed towards the first ones (popular).
    fn popular(&self, rng: &mut ChaCha8Rng) -> Option<&'a SongDoc> {
        if self.songs.is_empty() {
            return None;
        }
        let u: f64 = rng.random();
        let idx = ((u.powf(1.5) * self.songs.len() as f64) as usize).min(self.songs.len() - 1);
        Some(&self.songs[idx])
    }

    /// A play: (song, artist, length).
    fn play(&self, rng: &mut ChaCha8Rng) -> (String, String, f64) {
        let kind: f64 = rng.random();
        let Some(song) = self.popular(rng) else {
            return self.unknown(rng);
        };
        if kind < UNKNOWN_PLAYS {
            self.unknown(rng)
        } else if kind < UNKNOWN_PLAYS + NEAR_MISS_LENGTH_PLAYS {
            // Right title and artist, a length >= 3 s from every song of that title and artist.
            let group = self
                .durations
                .get(&(song.title.as_str(), song.artist_name.as_str()))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for _ in 0..8 {
                let off = rng.random_range(SAME_NAME_MIN_GAP..30.0);
                let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                let length = round_to(song.duration + sign * off, 5);
                let far = group
                    .iter()
                    .all(|d| (d - length).abs() >= SAME_NAME_MIN_GAP);
                if length > 1.0 && far {
                    return (song.title.clone(), song.artist_name.clone(), length);
                }
            }
            self.unknown(rng)
        } else if kind < UNKNOWN_PLAYS + NEAR_MISS_LENGTH_PLAYS + NEAR_MISS_ARTIST_PLAYS {
            // Right title and length, an artist with no song of that title.
            let other = self.songs[rng.random_range(0..self.songs.len())]
                .artist_name
                .clone();
            let artist = if self.has(&song.title, &other) {
                self.unknown_artist_for(rng, &song.title)
            } else {
                other
            };
            (song.title.clone(), artist, song.duration)
        } else {
            // A catalogue play: length == duration, or a few tenths of a second off.
            let tenths = if rng.random_bool(0.5) {
                0
            } else {
                rng.random_range(-4..=4)
            };
            let length = round_to(song.duration + f64::from(tenths) / 10.0, 5);
            (song.title.clone(), song.artist_name.clone(), length)
        }
    }

    /// A song that is not in the catalogue.
    fn unknown(&self, rng: &mut ChaCha8Rng) -> (String, String, f64) {
        let title = unknown_title(rng);
        let artist = self.unknown_artist_for(rng, &title);
        (title, artist, round_to(rng.random_range(30.0..600.0), 5))
    }

    /// An artist name with no catalogue song titled `title`.
    fn unknown_artist_for(&self, rng: &mut ChaCha8Rng, title: &str) -> String {
        let mut artist = unknown_artist(rng);
        let mut n = 2;
        while self.has(title, &artist) {
            artist = format!("{} {n}", unknown_artist(rng));
            n += 1;
        }
        artist
    }
}

/// Logged-in pages other than `NextSong`, with weights: (page, method, status, weight).
const OTHER_PAGES: &[(&str, &str, u16, u32)] = &[
    ("Home", "GET", 200, 30),
    ("Thumbs Up", "PUT", 307, 12),
    ("Add to Playlist", "PUT", 200, 8),
    ("Roll Advert", "GET", 200, 10),
    ("Add Friend", "PUT", 307, 5),
    ("Thumbs Down", "PUT", 307, 4),
    ("Settings", "GET", 200, 4),
    ("Help", "GET", 200, 3),
    ("About", "GET", 200, 2),
    ("Save Settings", "PUT", 307, 2),
    ("Error", "GET", 404, 1),
];

fn other_page(rng: &mut ChaCha8Rng, paid: bool) -> (&'static str, &'static str, u16) {
    let total: u32 = OTHER_PAGES.iter().map(|p| p.3).sum();
    let mut r = rng.random_range(0..total.max(1));
    for &(page, method, status, weight) in OTHER_PAGES {
        if r < weight {
            // Adverts are for free users.
            if page == "Roll Advert" && paid {
                return ("Home", "GET", 200);
            }
            return (page, method, status);
        }
        r -= weight;
    }
    ("Home", "GET", 200)
}

/// Builds the events of one session, stopping at the end of the day.
struct SessionWriter<'a> {
    events: &'a mut Vec<Event>,
    session_id: i64,
    item: u32,
    ts: i64,
    day_end: i64,
}

impl SessionWriter<'_> {
    fn open(&self) -> bool {
        self.ts < self.day_end
    }

    /// Appends an event at the current time, then moves the clock `gap_ms` on.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        user: &UserState,
        logged_in: bool,
        page: &str,
        method: &str,
        status: u16,
        play: Option<(String, String, f64)>,
        gap_ms: i64,
    ) {
        let some = |s: &str| logged_in.then(|| s.to_string());
        let (song, artist, length) = match play {
            Some((song, artist, length)) => (Some(song), Some(artist), Some(length)),
            None => (None, None, None),
        };
        self.events.push(Event {
            artist,
            auth: if logged_in { "Logged In" } else { "Logged Out" }.to_string(),
            first_name: some(user.first_name),
            gender: some(user.gender),
            item_in_session: self.item,
            last_name: some(user.last_name),
            length,
            level: if user.paid { "paid" } else { "free" }.to_string(),
            location: some(user.location),
            method: method.to_string(),
            page: page.to_string(),
            registration: logged_in.then_some(user.registration),
            session_id: self.session_id,
            song,
            status,
            ts: self.ts,
            user_agent: some(user.user_agent),
            user_id: if logged_in {
                user.id.clone()
            } else {
                String::new()
            },
        });
        self.item += 1;
        self.ts += gap_ms.max(1);
    }
}

fn gen_days(
    rng: &mut ChaCha8Rng,
    scale: &SparkifyScale,
    songs: &[SongDoc],
    mut users: Vec<UserState>,
) -> Vec<(NaiveDate, Vec<Event>)> {
    let catalogue = Catalogue::new(songs);
    let mut next_session: i64 = rng.random_range(1..1_000);
    let mut days = Vec::with_capacity(scale.days as usize);
    for d in 0..scale.days {
        let Some(day) = scale.start.checked_add_days(Days::new(u64::from(d))) else {
            break;
        };
        let day_start = midnight_ms(day);
        let day_end = day_start + 86_400_000;
        let n = scale.sessions_per_day;
        let n = rng.random_range(n * 8 / 10..=n * 12 / 10);
        let mut starts: Vec<i64> = (0..n)
            .map(|_| day_start + rng.random_range(0..86_400_000))
            .collect();
        starts.sort_unstable();
        let mut events = Vec::new();
        for start in starts {
            if users.is_empty() {
                break;
            }
            // An active user (skewed towards the first ones) not already in a session.
            let free_user = (0..5).find_map(|_| {
                let u: f64 = rng.random();
                let idx = ((u * u * users.len() as f64) as usize).min(users.len() - 1);
                (users[idx].busy_until <= start).then_some(idx)
            });
            let Some(idx) = free_user else {
                continue;
            };
            let session_id = next_session;
            next_session += 1;
            let user = &mut users[idx];
            let mut w = SessionWriter {
                events: &mut events,
                session_id,
                item: 0,
                ts: start,
                day_end,
            };
            gen_session(rng, &catalogue, user, day, &mut w);
            user.busy_until = w.ts;
        }
        days.push((day, events));
    }
    days
}

fn gen_session(
    rng: &mut ChaCha8Rng,
    catalogue: &Catalogue,
    user: &mut UserState,
    day: NaiveDate,
    w: &mut SessionWriter,
) {
    // Some sessions begin logged out: a home page or two, then the login.
    if rng.random_bool(0.12) {
        for _ in 0..rng.random_range(1..=2) {
            let gap = rng.random_range(2_000..30_000);
            w.push(user, false, "Home", "GET", 200, None, gap);
        }
        let gap = rng.random_range(1_000..5_000);
        w.push(user, false, "Login", "PUT", 307, None, gap);
    }
    let n = rng.random_range(1..=30);
    let change_at = match user.change_on {
        Some(on) if on <= day => Some(rng.random_range(0..n)),
        _ => None,
    };
    for i in 0..n {
        if !w.open() {
            return;
        }
        if change_at == Some(i) {
            let (page, submit) = if user.paid {
                ("Downgrade", "Submit Downgrade")
            } else {
                ("Upgrade", "Submit Upgrade")
            };
            w.push(
                user,
                true,
                page,
                "GET",
                200,
                None,
                rng.random_range(5_000..60_000),
            );
            if !w.open() {
                return;
            }
            w.push(
                user,
                true,
                submit,
                "PUT",
                307,
                None,
                rng.random_range(1_000..5_000),
            );
            user.paid = !user.paid;
            user.change_on = None;
            if !w.open() {
                return;
            }
        }
        if rng.random_bool(0.8) {
            let play = catalogue.play(rng);
            let gap = (play.2 * 1000.0).round() as i64 + rng.random_range(0..2_000);
            w.push(user, true, "NextSong", "PUT", 200, Some(play), gap);
        } else {
            let (page, method, status) = other_page(rng, user.paid);
            let gap = rng.random_range(1_000..90_000);
            w.push(user, true, page, method, status, None, gap);
        }
    }
    // Some sessions end with a logout, usually followed by a logged-out home page.
    if w.open() && rng.random_bool(0.25) {
        let gap = rng.random_range(1_000..5_000);
        w.push(user, true, "Logout", "PUT", 307, None, gap);
        if w.open() && rng.random_bool(0.7) {
            let gap = rng.random_range(1_000..5_000);
            w.push(user, false, "Home", "GET", 200, None, gap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn small() -> SparkifyScale {
        SparkifyScale {
            songs: 300,
            users: 30,
            days: 5,
            sessions_per_day: 40,
            ..SparkifyScale::default()
        }
    }

    fn read_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let landing = root.join(LANDING);
        for dir in ["song_data", "log_data"] {
            for path in json_files(&landing.join(dir)).unwrap() {
                let body = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), body);
            }
        }
        out
    }

    #[test]
    fn deterministic_files() {
        let scale = small();
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let ka = SparkifyData::generate(42, &scale).land(a.path()).unwrap();
        let kb = SparkifyData::generate(42, &scale).land(b.path()).unwrap();
        let kc = SparkifyData::generate(43, &scale).land(c.path()).unwrap();
        assert_eq!(ka, kb);
        let (ta, tb, tc) = (
            read_tree(a.path()),
            read_tree(b.path()),
            read_tree(c.path()),
        );
        assert_eq!(ta.len(), ka.len());
        assert_eq!(ta, tb);
        assert_ne!(ka, kc);
        assert_ne!(ta, tc);
        // Songs first, then one log per day in order.
        assert!(ka[..scale.songs]
            .iter()
            .all(|k| k.starts_with("landing_zone/song_data/")));
        let logs: Vec<&str> = ka[scale.songs..].iter().map(String::as_str).collect();
        assert_eq!(
            logs,
            [
                "landing_zone/log_data/2018/11/2018-11-01-events.json",
                "landing_zone/log_data/2018/11/2018-11-02-events.json",
                "landing_zone/log_data/2018/11/2018-11-03-events.json",
                "landing_zone/log_data/2018/11/2018-11-04-events.json",
                "landing_zone/log_data/2018/11/2018-11-05-events.json",
            ]
        );
        // More sessions leave the songs alone.
        let more = SparkifyData::generate(
            42,
            &SparkifyScale {
                sessions_per_day: 80,
                ..scale.clone()
            },
        );
        assert_eq!(more.songs, SparkifyData::generate(42, &scale).songs);
    }

    fn assert_keys_in_order(json: &str, keys: &[&str]) {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v.as_object().unwrap().len(), keys.len(), "{json}");
        let mut last = 0;
        for k in keys {
            let pos = json
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing in {json}"));
            assert!(pos >= last, "{k} out of order in {json}");
            last = pos;
        }
    }

    const EVENT_FIELDS: &[&str] = &[
        "artist",
        "auth",
        "firstName",
        "gender",
        "itemInSession",
        "lastName",
        "length",
        "level",
        "location",
        "method",
        "page",
        "registration",
        "sessionId",
        "song",
        "status",
        "ts",
        "userAgent",
        "userId",
    ];

    fn is_msd(id: &str, prefix: &str) -> bool {
        id.len() == 18
            && id.starts_with(prefix)
            && id[2..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    }

    /// Every landed line and document parses with the pipeline's types; the logs' invariants.
    #[test]
    fn landed_files_have_the_contract_types() {
        let dir = tempfile::tempdir().unwrap();
        let data = SparkifyData::generate(7, &SparkifyScale::default());
        let keys = data.land(dir.path()).unwrap();
        let str_or_null = |v: &serde_json::Value| v.is_string() || v.is_null();
        for key in &keys[..data.songs.len()] {
            let text = std::fs::read_to_string(key_path(dir.path(), key)).unwrap();
            assert_keys_in_order(
                &text,
                &[
                    "num_songs",
                    "artist_id",
                    "artist_latitude",
                    "artist_longitude",
                    "artist_location",
                    "artist_name",
                    "song_id",
                    "title",
                    "duration",
                    "year",
                ],
            );
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["num_songs"].as_i64(), Some(1));
            assert!(is_msd(v["artist_id"].as_str().unwrap(), "AR"));
            assert!(is_msd(v["song_id"].as_str().unwrap(), "SO"));
            let track = key.rsplit('/').next().unwrap().trim_end_matches(".json");
            assert!(is_msd(track, "TR"), "{key}");
            let b = track.as_bytes();
            let want = format!(
                "landing_zone/song_data/{}/{}/{}/{track}.json",
                b[2] as char, b[3] as char, b[4] as char
            );
            assert_eq!(*key, want);
            for (f, range) in [("artist_latitude", 90.0), ("artist_longitude", 180.0)] {
                assert!(v[f].is_null() || v[f].as_f64().unwrap().abs() <= range);
            }
            assert!(v["artist_location"].is_string());
            assert!(!v["artist_name"].as_str().unwrap().is_empty());
            assert!(!v["title"].as_str().unwrap().is_empty());
            assert!(v["duration"].as_f64().unwrap() > 0.0);
            let year = v["year"].as_i64().unwrap();
            assert!(year == 0 || (1950..=2010).contains(&year));
        }
        let mut keys_seen = HashSet::new();
        let mut logged_out = 0;
        let mut last: HashMap<i64, (u64, i64)> = HashMap::new();
        for (key, (day, _)) in keys[data.songs.len()..].iter().zip(&data.days) {
            let text = std::fs::read_to_string(key_path(dir.path(), key)).unwrap();
            assert!(text.ends_with('\n'));
            let (lo, hi) = (midnight_ms(*day), midnight_ms(*day) + 86_400_000);
            for line in text.lines() {
                assert_keys_in_order(line, EVENT_FIELDS);
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let page = v["page"].as_str().unwrap();
                let auth = v["auth"].as_str().unwrap();
                assert!(["Logged In", "Logged Out"].contains(&auth));
                assert!(["free", "paid"].contains(&v["level"].as_str().unwrap()));
                assert!(["GET", "PUT"].contains(&v["method"].as_str().unwrap()));
                let status = v["status"].as_i64().unwrap();
                assert!([200, 307, 404].contains(&status), "{line}");
                let session = v["sessionId"].as_i64().unwrap();
                let item = v["itemInSession"].as_u64().unwrap();
                let ts = v["ts"].as_i64().unwrap();
                assert!(ts >= lo && ts < hi, "{line}");
                assert!(keys_seen.insert((session, item)), "duplicate key {line}");
                // Consecutive items, increasing ts within a session.
                match last.insert(session, (item, ts)) {
                    Some((prev_item, prev_ts)) => {
                        assert_eq!(item, prev_item + 1);
                        assert!(ts > prev_ts);
                    }
                    None => assert_eq!(item, 0),
                }
                let user = v["userId"].as_str().unwrap();
                let play = page == "NextSong";
                for f in ["song", "artist"] {
                    assert!(v[f].is_string() == play && str_or_null(&v[f]), "{line}");
                }
                assert!(v["length"].is_f64() == play, "{line}");
                assert!(v["length"].is_null() || v["length"].as_f64().unwrap() > 0.0);
                let people = ["firstName", "lastName", "gender", "location", "userAgent"];
                if auth == "Logged Out" {
                    logged_out += 1;
                    assert_eq!(user, "");
                    assert!(!play);
                    assert!(v["registration"].is_null());
                    assert!(people.iter().all(|f| v[*f].is_null()), "{line}");
                } else {
                    assert!(user.parse::<u32>().is_ok(), "{line}");
                    assert!(v["registration"].as_i64().unwrap() < lo);
                    assert!(people.iter().all(|f| v[*f].is_string()), "{line}");
                }
                if ["Login", "Logout"].contains(&page) {
                    assert_eq!(status, 307);
                }
            }
        }
        assert!(logged_out > 0);
        assert_eq!(
            keys_seen.len() as u64,
            count_plays_in_files(dir.path()).unwrap().events
        );
    }

    #[test]
    fn plays_match_near_miss_and_miss() {
        let dir = tempfile::tempdir().unwrap();
        let data = SparkifyData::generate(42, &SparkifyScale::default());
        data.land(dir.path()).unwrap();
        let counts = count_plays_in_files(dir.path()).unwrap();
        assert_eq!(counts.songs, data.songs.len() as u64);
        assert_eq!(counts.next_song, data.next_song_events());
        assert!(counts.matched > 0 && counts.matched < counts.next_song);
        let ratio = counts.matched as f64 / counts.next_song as f64;
        assert!((0.7..0.85).contains(&ratio), "{ratio}");
        assert!(counts.users > 0 && counts.users <= 100);

        // Classify every play against the catalogue, from the in-memory songs.
        let mut by_name: HashMap<(&str, &str), Vec<f64>> = HashMap::new();
        let titles: HashSet<&str> = data.songs.iter().map(|s| s.title.as_str()).collect();
        for s in &data.songs {
            by_name
                .entry((&s.title, &s.artist_name))
                .or_default()
                .push(s.duration);
        }
        assert!(
            by_name.values().any(|ds| ds.len() > 1),
            "no shared title and artist"
        );
        for ds in by_name.values() {
            for (i, a) in ds.iter().enumerate() {
                assert!(ds[i + 1..].iter().all(|b| (a - b).abs() >= 3.0));
            }
        }
        let (mut matched, mut length_miss, mut artist_miss, mut unknown) = (0, 0, 0, 0);
        for e in data.days.iter().flat_map(|(_, es)| es) {
            let (Some(song), Some(artist), Some(length)) = (&e.song, &e.artist, e.length) else {
                continue;
            };
            match by_name.get(&(song.as_str(), artist.as_str())) {
                Some(ds) => {
                    let close = ds.iter().filter(|d| (length - *d).abs() < 1.0).count();
                    assert!(close <= 1, "ambiguous play {e:?}");
                    if close == 1 {
                        assert!(ds.iter().any(|d| (length - d).abs() <= 0.5 + 1e-9));
                        matched += 1;
                    } else {
                        assert!(ds.iter().all(|d| (length - d).abs() >= 3.0 - 1e-9));
                        length_miss += 1;
                    }
                }
                None if titles.contains(song.as_str()) => artist_miss += 1,
                None => unknown += 1,
            }
        }
        assert_eq!(matched, counts.matched);
        assert!(length_miss > 0 && artist_miss > 0 && unknown > 0);
        assert_eq!(
            matched + length_miss + artist_miss + unknown,
            counts.next_song
        );

        // Names with non-ASCII characters, quotes and commas, in the catalogue and played.
        let odd = |s: &str| !s.is_ascii() || s.contains('"') || s.contains(',');
        assert!(data.songs.iter().any(|s| !s.title.is_ascii()));
        assert!(data.songs.iter().any(|s| s.title.contains('"')));
        assert!(data.songs.iter().any(|s| s.artist_name.contains(',')));
        assert!(data.songs.iter().any(|s| !s.artist_name.is_ascii()));
        assert!(data
            .days
            .iter()
            .flat_map(|(_, es)| es)
            .any(|e| e.song.as_deref().is_some_and(odd)));
    }

    #[test]
    fn users_change_level_and_sessions_log_in() {
        let data = SparkifyData::generate(42, &SparkifyScale::default());
        let mut levels: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut sessions_logging_in = 0;
        for e in data.days.iter().flat_map(|(_, es)| es) {
            if !e.user_id.is_empty() {
                let l = levels.entry(&e.user_id).or_default();
                if l.last() != Some(&e.level.as_str()) {
                    l.push(&e.level);
                }
            }
            if e.page == "Login" {
                assert_eq!(e.auth, "Logged Out");
                assert_eq!(e.user_id, "");
                sessions_logging_in += 1;
            }
        }
        assert!(sessions_logging_in > 0);
        assert!(levels.values().any(|l| l == &["free", "paid"]));
        // The first event of some sessions is logged out.
        let mut first_out = 0;
        for (_, es) in &data.days {
            first_out += es
                .iter()
                .filter(|e| e.item_in_session == 0 && e.auth == "Logged Out")
                .count();
        }
        assert!(first_out > 0);
    }

    #[test]
    fn default_scale_and_empty_scales() {
        let s = SparkifyScale::default();
        assert_eq!(
            (s.songs, s.users, s.days, s.sessions_per_day),
            (2_000, 100, 30, 60)
        );
        assert_eq!(s.start, NaiveDate::from_ymd_opt(2018, 11, 1).unwrap());
        let data = SparkifyData::generate(42, &s);
        assert_eq!(data.songs.len(), 2_000);
        assert_eq!(data.days.len(), 30);
        for (songs, users, days, sessions_per_day) in
            [(0, 0, 0, 0), (0, 3, 2, 5), (1, 0, 2, 5), (3, 1, 1, 10)]
        {
            let scale = SparkifyScale {
                songs,
                users,
                days,
                sessions_per_day,
                ..SparkifyScale::default()
            };
            let data = SparkifyData::generate(0, &scale);
            assert_eq!(data.songs.len(), songs);
            assert_eq!(data.days.len(), days as usize);
            let dir = tempfile::tempdir().unwrap();
            let keys = data.land(dir.path()).unwrap();
            assert_eq!(keys.len(), songs + days as usize);
            let counts = count_plays_in_files(dir.path()).unwrap();
            assert_eq!(counts.next_song, data.next_song_events());
        }
        // Nothing landed: all zero.
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            count_plays_in_files(dir.path()).unwrap(),
            PlayCounts::default()
        );
    }
}
