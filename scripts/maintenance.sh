#!/usr/bin/env bash
# maintenance.sh - Daily maintenance script (the operations guide's, made fit
# for cron): health check, backup + verify, checkpoint when the WAL is large,
# compaction when fragmentation is high.
#
# Cron mails whatever a job prints, so the script prints nothing on success.
# Every step's output and every failure reason go to LOG_FILE; on failure one
# line naming the step also goes to stderr (the cron mail), and ON_FAILURE,
# if set, is run.
#
# Configure with environment variables:
#   DB_PATH     database file               (default /data/production.db)
#   BACKUP_DIR  where backups go            (default /backups)
#   LOG_FILE    log file, appended to       (default /var/log/sombra-maintenance.log)
#   WAL_LIMIT   checkpoint above this many WAL bytes (default 104857600, 100MB)
#   FRAG_LIMIT  compact above this fragmentation percentage (default 20)
#   LOCK_FILE   lock taken with flock -n so one run at a time works on a
#               database (default DB_PATH.maintenance.lock, next to the database)
#   ON_FAILURE  optional shell command run (sh -c) when the script fails, e.g.
#               a curl to an alerting hook; it sees SOMBRA_STEP (the failed
#               step), SOMBRA_EXIT (the exit status) and SOMBRA_MESSAGE.
#
# Exit status (one per failing step, so an alert can say what broke):
#   0   maintenance done (a degraded health check is logged, not a failure)
#   3   another maintenance.sh run holds LOCK_FILE (nothing was done)
#   10  setup: cannot write LOG_FILE, create BACKUP_DIR or open LOCK_FILE
#   11  health check: the database is unhealthy or its health is unknown
#   12  the backup failed
#   13  the new backup failed verification
#   14  checkpoint: reading the WAL size or the checkpoint failed
#   15  compaction: reading the fragmentation or the compaction failed
set -u -o pipefail

DB_PATH="${DB_PATH:-/data/production.db}"
BACKUP_DIR="${BACKUP_DIR:-/backups}"
LOG_FILE="${LOG_FILE:-/var/log/sombra-maintenance.log}"
WAL_LIMIT="${WAL_LIMIT:-104857600}"
FRAG_LIMIT="${FRAG_LIMIT:-20}"
LOCK_FILE="${LOCK_FILE:-$DB_PATH.maintenance.lock}"
ON_FAILURE="${ON_FAILURE:-}"

log() {
  echo "[$(date '+%Y-%m-%d %H:%M:%S')] maintenance.sh[$$]: $1" >>"$LOG_FILE"
}

# fail STEP CODE MESSAGE: log the reason, tell cron (stderr), alert, exit.
fail() {
  local step=$1 code=$2 msg=$3
  log "FAILED ($step, exit $code): $msg"
  echo "maintenance.sh: $step failed (exit $code): $msg; see $LOG_FILE" >&2
  if [ -n "$ON_FAILURE" ]; then
    SOMBRA_STEP=$step SOMBRA_EXIT=$code SOMBRA_MESSAGE=$msg sh -c "$ON_FAILURE" >>"$LOG_FILE" 2>&1 \
      || log "ON_FAILURE command failed (exit $?)"
  fi
  exit "$code"
}

# The log must be writable before anything can be reported in it.
if ! { : >>"$LOG_FILE"; } 2>/dev/null; then
  echo "maintenance.sh: setup failed (exit 10): cannot write log file $LOG_FILE" >&2
  exit 10
fi

# One run at a time: a run still compacting must not race a second one
# (which would back up and checkpoint under it). The lock goes when this
# process exits, however it exits.
{ exec 9>>"$LOCK_FILE"; } 2>/dev/null || fail setup 10 "cannot open lock file $LOCK_FILE"
if ! flock -n 9; then
  fail lock 3 "another maintenance.sh run holds $LOCK_FILE; not starting a second one"
fi

mkdir -p "$BACKUP_DIR" 2>>"$LOG_FILE" || fail setup 10 "cannot create $BACKUP_DIR"

# Health check: 0 healthy, 1 degraded (a large WAL or high fragmentation is
# exactly what the steps below fix, so carry on), 2 unhealthy, 3 unknown.
log "starting health check of $DB_PATH"
sombra-health-check --db "$DB_PATH" >>"$LOG_FILE" 2>&1
HEALTH=$?
case $HEALTH in
  0) ;;
  1) log "health check: degraded; continuing (maintenance may fix it)" ;;
  2) fail health-check 11 "$DB_PATH is unhealthy (sombra-health-check exit 2)" ;;
  *) fail health-check 11 "health of $DB_PATH is unknown (sombra-health-check exit $HEALTH)" ;;
esac

# Backup: incremental on top of the existing chain; the first run of a new
# backup directory has no base yet, so it takes a full backup. After a
# compaction the file is a new one (new file id) and has no base either:
# --full-if-no-base then takes a full backup under the same name.
if compgen -G "$BACKUP_DIR/*.backup" >/dev/null; then
  TYPE=incremental
  NAME="inc_$(date +%Y%m%d_%H%M%S)"
else
  TYPE=full
  NAME="full_$(date +%Y%m%d_%H%M%S)"
fi
log "creating $TYPE backup $BACKUP_DIR/$NAME.backup"
sombra-backup --type "$TYPE" --full-if-no-base --db "$DB_PATH" --output "$BACKUP_DIR/$NAME" >>"$LOG_FILE" 2>&1 \
  || fail backup 12 "$TYPE backup of $DB_PATH failed (exit $?)"
sombra-backup verify "$BACKUP_DIR/$NAME.backup" >>"$LOG_FILE" 2>&1 \
  || fail verify 13 "verification of $BACKUP_DIR/$NAME.backup failed (exit $?)"

# Checkpoint if the WAL is large. --mode truncate: full copies the frames
# back but leaves the WAL file its size; truncate also shrinks it to zero.
WAL_SIZE=$(sombra-info --db "$DB_PATH" --wal-size 2>>"$LOG_FILE") \
  || fail checkpoint 14 "cannot read the WAL size of $DB_PATH (exit $?)"
if [ "$WAL_SIZE" -gt "$WAL_LIMIT" ]; then
  log "WAL size is ${WAL_SIZE} bytes, checkpointing (truncate)"
  sombra-checkpoint --db "$DB_PATH" --mode truncate >>"$LOG_FILE" 2>&1 \
    || fail checkpoint 14 "checkpoint --mode truncate of $DB_PATH failed (exit $?)"
fi

# Compact if fragmentation is high
FRAGMENTATION=$(sombra-info --db "$DB_PATH" --fragmentation 2>>"$LOG_FILE") \
  || fail compaction 15 "cannot read the fragmentation of $DB_PATH (exit $?)"
if [ "$FRAGMENTATION" -gt "$FRAG_LIMIT" ]; then
  log "fragmentation is ${FRAGMENTATION}%, compacting"
  sombra-compact --db "$DB_PATH" >>"$LOG_FILE" 2>&1 \
    || fail compaction 15 "compaction of $DB_PATH failed (exit $?)"
fi

log "maintenance completed successfully"
