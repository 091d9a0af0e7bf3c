package governor

import (
	"net/http"
	"strconv"
)

// registerBackupRoute serves GET /v1/db/backup: a consistent copy of the
// database from one read transaction, streamed while the relay goes on
// serving (bbolt's Tx.WriteTo). The daemon owns the file lock, so this is
// how a running relay is backed up ("kadenz db backup"). It sits behind
// the admin token and loopback rule like every admin route; the copy holds
// every address and message, so it is as sensitive as the data directory.
func (r *Relay) registerBackupRoute(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/db/backup", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="kadenz.db"`)
		cw := &countingWriter{w: w}
		size, err := r.db.Backup(cw, func(size int64) {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		})
		if err != nil {
			// Once bytes are out the status is sent; the short
			// Content-Length tells the client the copy is incomplete.
			r.log.Error("database backup failed", "error", err, "written", cw.n, "size", size)
			if cw.n == 0 {
				http.Error(w, "backup failed: "+err.Error(), http.StatusInternalServerError)
			}
			return
		}
		r.log.Info("database backup sent", "bytes", cw.n, "remote", req.RemoteAddr)
	})
}

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
