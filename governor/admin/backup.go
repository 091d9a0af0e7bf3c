package admin

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"syscall"

	"kadenz/store"
)

// registerBackupRoute serves GET /v1/db/backup: a consistent copy of the
// database as of one read transaction, taken while the relay goes on
// serving (bbolt's Tx.WriteTo). The daemon owns the file lock, so this is
// how a running relay is backed up ("kadenz db backup").
//
// The copy is first written to an unlinked temporary file in the data
// directory, then sent from there: a read transaction that lasted as long
// as a slow client's download would keep bbolt from growing its memory
// map, and so stall every write that needs a bigger file (intake's 250s
// among them). Writing locally takes as long as the disk does; the
// download then takes as long as it likes.
//
// Only a backend that can copy itself (store.Snapshotter: bbolt) serves
// it; on any other the route answers 501 and the database's own tools
// (for SQL, its dump and replication) are the way.
//
// It sits behind the admin token and loopback rule like every admin route;
// the copy holds every address and message, so it is as sensitive as the
// data directory.
func (a *Server) registerBackupRoute(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/db/backup", func(w http.ResponseWriter, req *http.Request) {
		snap, ok := a.db.(store.Snapshotter)
		if !ok {
			http.Error(w, "backup: this store is not one file; back it up with the database's own tools", http.StatusNotImplemented)
			return
		}
		f, err := os.CreateTemp(a.config().DataDir, ".backup-*.tmp")
		if err != nil {
			http.Error(w, "backup: "+err.Error(), http.StatusInternalServerError)
			return
		}
		os.Remove(f.Name()) // gone with the last handle, even after a crash
		defer f.Close()
		size, err := snap.Backup(f, nil)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			a.log.Error("database backup failed", "error", err)
			code := http.StatusInternalServerError
			if errors.Is(err, syscall.ENOSPC) {
				code = http.StatusInsufficientStorage
			}
			http.Error(w, "backup: "+err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="kadenz.db"`)
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		n, err := io.Copy(w, f)
		if err != nil {
			a.log.Warn("database backup not fully sent", "error", err, "sent", n, "size", size, "remote", req.RemoteAddr)
			return
		}
		a.log.Info("database backup sent", "bytes", n, "remote", req.RemoteAddr)
	})
}
