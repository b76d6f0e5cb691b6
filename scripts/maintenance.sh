#!/usr/bin/env bash
# maintenance.sh - Daily maintenance script (the operations guide's, made
# correct). Configure with environment variables:
#   DB_PATH     database file               (default /data/production.db)
#   BACKUP_DIR  where backups go            (default /backups)
#   LOG_FILE    log file, appended to       (default /var/log/sombra-maintenance.log)
#   WAL_LIMIT   checkpoint above this many WAL bytes (default 104857600, 100MB)
#   FRAG_LIMIT  compact above this fragmentation percentage (default 20)
# Exit status: 0 done, 1 a step failed (the log says which). A degraded
# health check does not stop the run; an unhealthy or unknown one does.
set -u -o pipefail

DB_PATH="${DB_PATH:-/data/production.db}"
BACKUP_DIR="${BACKUP_DIR:-/backups}"
LOG_FILE="${LOG_FILE:-/var/log/sombra-maintenance.log}"
WAL_LIMIT="${WAL_LIMIT:-104857600}"
FRAG_LIMIT="${FRAG_LIMIT:-20}"

log() {
  echo "[$(date '+%Y-%m-%d %H:%M:%S')] $1" | tee -a "$LOG_FILE"
}

fail() {
  log "$1"
  exit 1
}

mkdir -p "$BACKUP_DIR" || fail "cannot create $BACKUP_DIR"

# Health check: 0 healthy, 1 degraded, 2 unhealthy, 3 unknown. Degraded
# (a large WAL, an old checkpoint, fragmentation) is what the steps below
# fix, so only unhealthy or unknown stops the run.
log "Starting health check..."
sombra-health-check --db "$DB_PATH"
HEALTH=$?
case "$HEALTH" in
  0) ;;
  1) log "Health check: degraded; continuing (checkpoint and compaction below address it)" ;;
  *) fail "Health check failed! (exit $HEALTH)" ;;
esac

# Backup: incremental on top of the existing chain; the first run of a new
# backup directory has no base yet, so it takes a full backup. After a
# compaction the file is a new one (new file id) and has no base either:
# --full-if-no-base then takes a full backup under the same name.
log "Creating backup..."
if compgen -G "$BACKUP_DIR/*.backup" >/dev/null; then
  TYPE=incremental
  NAME="inc_$(date +%Y%m%d_%H%M%S)"
else
  TYPE=full
  NAME="full_$(date +%Y%m%d_%H%M%S)"
fi
sombra-backup --type "$TYPE" --full-if-no-base --input "$DB_PATH" --output "$BACKUP_DIR/$NAME" \
  || fail "Backup ($TYPE) failed!"
sombra-backup verify "$BACKUP_DIR/$NAME.backup" || fail "Backup verification failed!"

# Checkpoint if WAL is large
WAL_SIZE=$(sombra-info --db "$DB_PATH" --wal-size) || fail "cannot read WAL size"
if [ "$WAL_SIZE" -gt "$WAL_LIMIT" ]; then
  log "WAL size is ${WAL_SIZE} bytes, checkpointing..."
  sombra-checkpoint --db "$DB_PATH" --mode full || fail "Checkpoint failed!"
fi

# Compact if fragmentation is high
FRAGMENTATION=$(sombra-info --db "$DB_PATH" --fragmentation) || fail "cannot read fragmentation"
if [ "$FRAGMENTATION" -gt "$FRAG_LIMIT" ]; then
  log "Fragmentation is ${FRAGMENTATION}%, compacting..."
  sombra-compact --db "$DB_PATH" || fail "Compaction failed!"
fi

log "Maintenance completed successfully"
