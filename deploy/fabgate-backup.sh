#!/usr/bin/env bash
# fabgate-backup.sh: write a timestamped backup of FabGate's data file into a
# directory, then remove the old ones. See docs/deploy.md, Backups.
#
# usage: fabgate-backup.sh --dir DIR [--keep N] [--keep-days D]
#            (--url URL --email EMAIL --password-file FILE | --data DATADIR)
#
#   --dir DIR            where backups go (created 0700 if missing)
#   --url URL            a running server (http://127.0.0.1:8080): `fabgate backup --url`
#                        logs in as the admin account EMAIL, whose password is the first
#                        line of FILE, and saves the snapshot of POST /api/v1/backup
#   --data DATADIR       a stopped server's data directory: `fabgate backup --data`
#   --keep N             keep the N newest backups (default 14; at least 1)
#   --keep-days D        also keep every backup younger than D days (default 0)
#
# A backup is DIR/fabgate-YYYYMMDDTHHMMSSZ.db (UTC), mode 0600, written whole
# and checked by `fabgate backup` before it appears under that name. Then the
# backups of DIR that are neither among the N newest nor younger than D days
# are removed: only files named as this script names them, and never when the
# backup failed. The exit status is 0 only when the backup was written.
#
# Environment: FABGATE, the fabgate binary (default: fabgate on PATH);
# FABGATE_BACKUP_NOW, the time to name the backup by and to count days from,
# in Unix seconds (default: now; for tests).
set -euo pipefail
umask 077

prog=fabgate-backup.sh
die() { echo "$prog: $*" >&2; exit 1; }
help() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
usage() { help | sed -n '/^usage:/,/^$/p' >&2; exit 2; }

dir="" url="" email="" password_file="" data="" keep=14 keep_days=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
    --url) url=${2:?--url needs the server address}; shift 2 ;;
    --email) email=${2:?--email needs an account}; shift 2 ;;
    --password-file) password_file=${2:?--password-file needs a file}; shift 2 ;;
    --data) data=${2:?--data needs a directory}; shift 2 ;;
    --keep) keep=${2:?--keep needs a number}; shift 2 ;;
    --keep-days) keep_days=${2:?--keep-days needs a number}; shift 2 ;;
    -h|--help) help; exit 0 ;;
    *) echo "$prog: unknown argument $1" >&2; usage ;;
  esac
done

[ -n "$dir" ] || { echo "$prog: --dir is required" >&2; usage; }
[[ $keep =~ ^[0-9]+$ ]] && [ "$keep" -ge 1 ] || die "--keep $keep: give a whole number, 1 or more"
[[ $keep_days =~ ^[0-9]+$ ]] || die "--keep-days $keep_days: give a whole number of days"
if [ -n "$url" ]; then
  [ -z "$data" ] || die "give --url (a running server) or --data (a stopped one), not both"
  [ -n "$email" ] && [ -n "$password_file" ] || die "--url needs --email and --password-file (an admin account)"
  [ -r "$password_file" ] || die "cannot read the password file $password_file"
elif [ -z "$data" ]; then
  die "give --url URL (a running server) or --data DATADIR (a stopped one)"
fi

fabgate=${FABGATE:-fabgate}
command -v "$fabgate" >/dev/null || die "$fabgate not found: install it, or set FABGATE to its path"
now=${FABGATE_BACKUP_NOW:-$(date -u +%s)}
[[ $now =~ ^[0-9]+$ ]] || die "FABGATE_BACKUP_NOW=$now: give Unix seconds"
stamp() { date -u -d "@$1" +%Y%m%dT%H%M%SZ; }

mkdir -p -m 0700 -- "$dir"
name=fabgate-$(stamp "$now").db
out=$dir/$name
# Two runs within the same second would write the same name: the second one
# keeps the first's file rather than replacing a backup with another.
[ ! -e "$out" ] || die "$out exists already; not replaced"

if [ -n "$url" ]; then
  "$fabgate" backup --url "$url" --email "$email" --password-stdin --out "$out" <"$password_file" ||
    die "backup of $url failed; no backup was removed"
else
  "$fabgate" backup --data "$data" --out "$out" || die "backup of $data failed; no backup was removed"
fi

# Retention. Names sort by time: the newest first.
cutoff=$(stamp $((now - keep_days * 86400)))
mapfile -t backups < <(find "$dir" -maxdepth 1 -type f -name 'fabgate-*.db' -printf '%f\n' |
  grep -E '^fabgate-[0-9]{8}T[0-9]{6}Z\.db$' | LC_ALL=C sort -r)
i=0
for b in "${backups[@]}"; do
  i=$((i + 1))
  t=${b#fabgate-}
  t=${t%.db}
  if [ "$i" -le "$keep" ] || [ "$b" = "$name" ] || [[ ! $t < $cutoff ]]; then
    continue
  fi
  rm -f -- "$dir/$b"
  echo "removed $dir/$b"
done
