#!/usr/bin/env bash
# backup.sh - Daily backup script (the operations guide's, made fit for cron).
# Full backup on Sunday (or when the directory has none yet), incremental
# otherwise; the new backup is verified (checksums, chain, trial restore);
# backups older than KEEP_DAYS are pruned, whole chains kept.
#
# Cron mails whatever a job prints, so the script prints nothing on success.
# Every step's output and every failure reason go to LOG_FILE; on failure one
# line naming the step also goes to stderr (the cron mail), and ON_FAILURE,
# if set, is run.
#
# Configure with environment variables:
#   DB_PATH     database file     (default /data/production.db)
#   BACKUP_DIR  backup directory  (default /backups/sombra), or object
#               storage: s3://bucket/prefix (see README, off-machine backups)
#   KEEP_DAYS   retention in days (default 30)
#   LOG_FILE    log file, appended to (default /var/log/sombra-backup.log)
#   LOCK_FILE   lock taken with flock -n so one run at a time works on a
#               database (default DB_PATH.backup.lock, next to the database)
#   ON_FAILURE  optional shell command run (sh -c) when the script fails, e.g.
#               a curl to an alerting hook; it sees SOMBRA_STEP (the failed
#               step), SOMBRA_EXIT (the exit status) and SOMBRA_MESSAGE.
#
# Exit status (one per failing step, so an alert can say what broke):
#   0   backup taken, pruned and verified
#   3   another backup.sh run holds LOCK_FILE (nothing was done)
#   10  setup: cannot write LOG_FILE, create BACKUP_DIR or open LOCK_FILE
#   11  the backup failed
#   12  pruning old backups failed (the new backup exists and verified)
#   13  the new backup failed verification (nothing was pruned)
set -u -o pipefail

BACKUP_DIR="${BACKUP_DIR:-/backups/sombra}"
DB_PATH="${DB_PATH:-/data/production.db}"
KEEP_DAYS="${KEEP_DAYS:-30}"
LOG_FILE="${LOG_FILE:-/var/log/sombra-backup.log}"
LOCK_FILE="${LOCK_FILE:-$DB_PATH.backup.lock}"
ON_FAILURE="${ON_FAILURE:-}"
DATE=$(date +%Y%m%d_%H%M%S)

log() {
  echo "[$(date '+%Y-%m-%d %H:%M:%S')] backup.sh[$$]: $1" >>"$LOG_FILE"
}

# fail STEP CODE MESSAGE: log the reason, tell cron (stderr), alert, exit.
fail() {
  local step=$1 code=$2 msg=$3
  log "FAILED ($step, exit $code): $msg"
  echo "backup.sh: $step failed (exit $code): $msg; see $LOG_FILE" >&2
  if [ -n "$ON_FAILURE" ]; then
    SOMBRA_STEP=$step SOMBRA_EXIT=$code SOMBRA_MESSAGE=$msg sh -c "$ON_FAILURE" >>"$LOG_FILE" 2>&1 \
      || log "ON_FAILURE command failed (exit $?)"
  fi
  exit "$code"
}

# The log must be writable before anything can be reported in it.
if ! { : >>"$LOG_FILE"; } 2>/dev/null; then
  echo "backup.sh: setup failed (exit 10): cannot write log file $LOG_FILE" >&2
  exit 10
fi

# One run at a time: a run still going (a slow verify, a stuck disk) must not
# race a second one over the same backup directory. The lock goes when this
# process exits, however it exits.
{ exec 9>>"$LOCK_FILE"; } 2>/dev/null || fail setup 10 "cannot open lock file $LOCK_FILE"
if ! flock -n 9; then
  fail lock 3 "another backup.sh run holds $LOCK_FILE; not starting a second one"
fi

# BACKUP_DIR may be object storage, s3://bucket/prefix (endpoint and keys
# from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or
# AWS_PROFILE): nothing to create there, and the backups are listed by
# sombra-backup rather than by the shell.
case "$BACKUP_DIR" in
  s3://*)
    has_backups() { sombra-backup list --dir "$BACKUP_DIR" --json 2>>"$LOG_FILE" | grep -q '"name"'; }
    ;;
  *)
    mkdir -p "$BACKUP_DIR" 2>>"$LOG_FILE" || fail setup 10 "cannot create $BACKUP_DIR"
    has_backups() { compgen -G "$BACKUP_DIR/*.backup" >/dev/null; }
    ;;
esac

# Full backup on Sunday (or if there is nothing to build on), incremental otherwise.
if [ "$(date +%u)" -eq 7 ] || ! has_backups; then
  TYPE=full
  OUT="$BACKUP_DIR/full_$DATE"
else
  TYPE=incremental
  OUT="$BACKUP_DIR/inc_$DATE"
fi
log "starting $TYPE backup of $DB_PATH to $OUT.backup"
# --full-if-no-base: after a compaction the file is a new one with no base.
sombra-backup --type "$TYPE" --full-if-no-base --db "$DB_PATH" --output "$OUT" >>"$LOG_FILE" 2>&1 \
  || fail backup 11 "$TYPE backup of $DB_PATH failed (exit $?)"

# Verify before pruning: nothing old goes while the new backup is unproven.
sombra-backup verify "$OUT.backup" >>"$LOG_FILE" 2>&1 \
  || fail verify 13 "verification of $OUT.backup failed (exit $?)"

# Retention: delete backups older than KEEP_DAYS days, but never a base that
# a kept incremental needs (prune keeps whole chains; `find -mtime -delete`
# would remove the full backup under today's incremental), along with WAL
# archive segments no kept backup can use and temporary files of killed runs.
sombra-backup prune --dir "$BACKUP_DIR" --keep-days "$KEEP_DAYS" >>"$LOG_FILE" 2>&1 \
  || fail prune 12 "prune --keep-days $KEEP_DAYS in $BACKUP_DIR failed (exit $?)"

log "backup $OUT.backup created and verified"
