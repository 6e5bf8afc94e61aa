#!/usr/bin/env bash
# Remakes tests/data/journal-v0.sqlite3: a journal written by announce as of 020d637 (schema
# version 0), for the migration test in tests/suite/journal_migration.rs.
#   tests/data/make-old-journal.sh [OLD_ANNOUNCE_BINARY]   (default /work/bench/base/announce)
set -euo pipefail
BIN=${1:-/work/bench/base/announce}
OUT="$(cd "$(dirname "$0")" && pwd)/journal-v0.sqlite3"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
mkdir notices
cat >channels.toml <<'TOML'
state_dir = "state"
default_region = "DE"
[org]
name = "Studio"
[audience]
file = "people.csv"
[channels.outbox]
type = "outbox"
dir = "outbox"
[channels.sms]
type = "sms"
provider = "generic"
base_url = "http://127.0.0.1:9"
url = "/send"
from = "Studio"
TOML
printf 'name,email,phone\nAnna,anna@example.de,+49 151 11111111\nBen,ben@example.de,\nCarla,carla@,+49 151 33333333\nDora,dora@example.de,+49 151 44444444\n' >people.csv
printf '+++\ntitle = "Alt"\n+++\nHallo {{recipient.name}}.\n' >notices/n.md
"$BIN" --config channels.toml send notices/n.md --channel outbox --yes >/dev/null 2>&1 || true
printf '+++\ntitle = "Probe"\n+++\nProbe.\n' >notices/dry.md
"$BIN" --config channels.toml send notices/dry.md --dry-run --yes >/dev/null 2>&1 || true
sqlite3 state/journal.sqlite3 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
cp state/journal.sqlite3 "$OUT"
echo "wrote $OUT"
