//! Integration tests against the real application and a real MongoDB.
//!
//! Run them with the README's test command (`scripts/test.sh`), which starts a throwaway
//! MongoDB replica set and sets `MONGODB_URI`; or set `MONGODB_URI` yourself.

mod errors;
mod health;
mod helpers;
mod migrations;
mod outage;
