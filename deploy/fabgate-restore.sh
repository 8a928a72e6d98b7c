#!/usr/bin/env bash
# fabgate-restore.sh: put a backup in place as a data directory's data file,
# once it has passed `fabgate check`. See docs/deploy.md, Restoring.
#
# usage: fabgate-restore.sh [--force] BACKUP DATADIR
#
#   BACKUP    a file written by fabgate-backup.sh, `fabgate backup` or POST /api/v1/backup
#   DATADIR   the data directory to restore into (created 0700 if missing)
#   --force   restore into a data directory that is not empty; its data file is
#             kept beside the restored one as fabgate.db.before-restore-<time>
#
# It stops nothing: stop the server first (systemctl stop fabgate), and start
# it again after. It refuses when a process holds DATADIR/fabgate.db (a
# running server). Run it as the service user (sudo -u fabgate …) or as root;
# as root, the restored file is given the owner of DATADIR.
#
# The backup is copied into DATADIR under a name of its own and checked there
# with `fabgate check`, which also migrates it to this fabgate's schema: a
# backup of an older release comes out ready for this one. Only a copy that
# passes is renamed to DATADIR/fabgate.db; otherwise nothing is changed.
#
# Environment: FABGATE, the fabgate binary (default: fabgate on PATH).
set -euo pipefail
umask 077

prog=fabgate-restore.sh
die() { echo "$prog: $*" >&2; exit 1; }
help() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
usage() { help | sed -n '/^usage:/,/^$/p' >&2; exit 2; }

force=false
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=true; shift ;;
    -h|--help) help; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    -*) echo "$prog: unknown option $1" >&2; usage ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -eq 2 ] || usage
backup=${args[0]} data=${args[1]}

fabgate=${FABGATE:-fabgate}
command -v "$fabgate" >/dev/null || die "$fabgate not found: install it, or set FABGATE to its path"
[ -f "$backup" ] && [ -r "$backup" ] || die "cannot read the backup $backup"

db=$data/fabgate.db
if [ -d "$data" ] && [ -n "$(ls -A -- "$data")" ]; then
  $force || die "$data is not empty; to replace its data file, stop the server and pass --force (the current file is kept beside it)"
fi
if [ -e "$db" ]; then
  # The server holds an exclusive flock on its data file while it runs.
  command -v flock >/dev/null || die "flock (util-linux) is needed to tell whether a server uses $db"
  flock --nonblock --shared "$db" true ||
    die "$db is in use (is fabgate serve running? stop it: systemctl stop fabgate)"
fi

mkdir -p -m 0700 -- "$data"
staging=$(mktemp -d "$data/.restore.XXXXXX")
trap 'rm -rf -- "$staging"' EXIT
cp -- "$backup" "$staging/fabgate.db"
chmod 0600 "$staging/fabgate.db"
echo "checking $backup"
"$fabgate" check --data "$staging" ||
  die "$backup does not pass fabgate check: nothing was changed in $data"
if [ "$(id -u)" = 0 ]; then
  chown --reference="$data" -- "$staging/fabgate.db"
fi

if [ -e "$db" ]; then
  kept=$db.before-restore-$(date -u +%Y%m%dT%H%M%SZ)
  [ ! -e "$kept" ] || die "$kept exists already (a restore a second ago?); nothing was changed"
  mv -- "$db" "$kept"
  echo "kept the replaced data file as $kept (remove it once the restored lab is checked)"
fi
mv -- "$staging/fabgate.db" "$db"
sync -- "$db" "$data" 2>/dev/null || sync
echo "restored $backup into $db; start the server (systemctl start fabgate)"
