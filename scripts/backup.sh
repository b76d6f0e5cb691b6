#!/usr/bin/env bash
# backup.sh - Daily backup script (the operations guide's, made correct).
# Full backup on Sunday (or when the directory has none yet), incremental
# otherwise; the new backup is verified (checksums, chain, trial restore);
# backups older than KEEP_DAYS are pruned, whole chains kept; a failure
# exits 1.
# Configure with environment variables:
#   DB_PATH     database file     (default /data/production.db)
#   BACKUP_DIR  backup directory  (default /backups/sombra)
#   KEEP_DAYS   retention in days (default 30)
#   LOG_FILE    optional log file
set -u -o pipefail

BACKUP_DIR="${BACKUP_DIR:-/backups/sombra}"
DB_PATH="${DB_PATH:-/data/production.db}"
KEEP_DAYS="${KEEP_DAYS:-30}"
LOG_FILE="${LOG_FILE:-/dev/null}"
DATE=$(date +%Y%m%d_%H%M%S)

log() {
  echo "[$(date '+%Y-%m-%d %H:%M:%S')] $1" | tee -a "$LOG_FILE" >&2
}

# Create backup directory
mkdir -p "$BACKUP_DIR" || { log "cannot create $BACKUP_DIR"; exit 1; }

# Create full backup on Sunday (or if there is nothing to build on), incremental otherwise
if [ "$(date +%u)" -eq 7 ] || ! compgen -G "$BACKUP_DIR/*.backup" >/dev/null; then
  OUT="$BACKUP_DIR/full_$DATE"
  sombra-backup --type full --input "$DB_PATH" --output "$OUT" || { log "full backup failed"; exit 1; }
else
  OUT="$BACKUP_DIR/inc_$DATE"
  # --full-if-no-base: after a compaction the file is a new one with no base.
  sombra-backup --type incremental --full-if-no-base --input "$DB_PATH" --output "$OUT" || { log "incremental backup failed"; exit 1; }
fi

# Verify backup integrity
if ! sombra-backup verify "$OUT.backup"; then
  log "Backup verification failed: $OUT.backup"
  exit 1
fi

# Retention: delete backups older than KEEP_DAYS days, but never a base that
# a kept incremental needs (prune keeps whole chains; `find -mtime -delete`
# would remove the full backup under today's incremental), along with WAL
# archive segments no kept backup can use and temporary files of killed runs.
if ! sombra-backup prune --dir "$BACKUP_DIR" --keep-days "$KEEP_DAYS" --quiet; then
  log "Pruning old backups in $BACKUP_DIR failed"
  exit 1
fi
log "Backup $OUT.backup created and verified"
