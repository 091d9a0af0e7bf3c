package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The database is checked before bbolt maps it, by reading the file with
// our own bounds-checked reader, because bbolt trusts its file: a file
// shorter than its meta page says is a SIGBUS inside the mmap (a "fatal
// error: fault" no recover can catch), a garbled page makes a cursor index
// past a slice (a panic), and bbolt's own Tx.Check walks the tree in a
// goroutine of its own, so a panic there cannot be recovered by the caller
// either. Reading the pages ourselves, checking every offset against the
// page and every page against the file, turns each of these into a
// sentence. Only a file that passes is handed to bbolt, and Tx.Check then
// runs as a second opinion before anything is written.
//
// The layout read here is bbolt's file format, version 2 (the one bbolt
// v1.x writes): two meta pages, then branch, leaf and freelist pages, all
// little-endian on the platforms Kadenz runs on. Each page header names the
// page's own ID, which is what exposes an overwritten or shifted page: bbolt
// keeps no page checksums, so a page whose structure survives but whose
// bytes inside a value were changed cannot be told from a good one.

// Layout constants of bbolt's file format (go.etcd.io/bbolt/internal/common).
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elementSize      = 16 // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	metaSize         = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	bucketLeafFlag   = 0x01
	maxTreeDepth     = 64
	bucketHeaderSize = 16 // root pgid, sequence
)

var le = binary.LittleEndian

// MarkerName is the file beside kadenz.db that says the data directory
// once held a database: with it present, a missing or empty kadenz.db is
// damage, not a first start.
const MarkerName = "kadenz.db.present"

// meta is one of the two meta pages.
type meta struct {
	pageSize       uint32
	root, pages    uint64 // root bucket page; high-water mark (pages in use)
	txid           uint64
	err            error // why the page is not valid, nil if it is
	foundAt, pageN int
}

func parseMeta(b []byte) meta {
	var m meta
	if len(b) < pageHeaderSize+metaSize {
		m.err = errors.New("shorter than a meta page")
		return m
	}
	if le.Uint16(b[8:10])&metaPageFlag == 0 {
		m.err = errors.New("not marked as a meta page")
		return m
	}
	d := b[pageHeaderSize : pageHeaderSize+metaSize]
	if le.Uint32(d[0:4]) != boltMagic {
		m.err = errors.New("wrong magic number (not a bbolt file, or garbled)")
		return m
	}
	if v := le.Uint32(d[4:8]); v != boltVersion {
		m.err = fmt.Errorf("bbolt file format version %d, want %d", v, boltVersion)
		return m
	}
	h := fnv.New64a()
	h.Write(d[:56])
	if h.Sum64() != le.Uint64(d[56:64]) {
		m.err = errors.New("checksum mismatch (garbled)")
		return m
	}
	m.pageSize = le.Uint32(d[8:12])
	m.root = le.Uint64(d[16:24])
	m.pages = le.Uint64(d[40:48])
	m.txid = le.Uint64(d[48:56])
	if m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		m.err = fmt.Errorf("implausible page size %d", m.pageSize)
	} else if m.root < 2 || m.root >= m.pages {
		m.err = fmt.Errorf("root page %d outside the %d pages in use", m.root, m.pages)
	}
	return m
}

// readMetas reads both meta pages. The page size comes from the first
// valid one; meta page 1 sits one page in, so with page 0 unreadable the
// usual sizes are tried, as bbolt does.
func readMetas(f io.ReaderAt, size int64) (m [2]meta, pageSize int) {
	buf := make([]byte, pageHeaderSize+metaSize)
	read := func(off int64) meta {
		if off+int64(len(buf)) > size {
			return meta{err: errors.New("beyond the end of the file")}
		}
		if _, err := f.ReadAt(buf, off); err != nil {
			return meta{err: err}
		}
		return parseMeta(buf)
	}
	m[0] = read(0)
	if m[0].err == nil {
		pageSize = int(m[0].pageSize)
		m[1] = read(int64(pageSize))
		return m, pageSize
	}
	m[1] = meta{err: errors.New("not found at any usual page size")}
	for _, ps := range []int{os.Getpagesize(), 4096, 8192, 16384, 32768, 65536} {
		if mm := read(int64(ps)); mm.err == nil && int(mm.pageSize) == ps {
			return [2]meta{m[0], mm}, ps
		}
	}
	return m, 0
}

// pageReader reads pages of one file, each checked against the file's
// size, the high-water mark and its own header.
type pageReader struct {
	f        io.ReaderAt
	size     int64
	pageSize int
	pages    uint64 // high-water mark from the meta page
}

func (r *pageReader) read(id uint64) ([]byte, error) {
	if id < 2 || id >= r.pages {
		return nil, fmt.Errorf("page %d: outside the %d pages in use", id, r.pages)
	}
	off := int64(id) * int64(r.pageSize)
	if off+int64(r.pageSize) > r.size {
		return nil, fmt.Errorf("page %d: beyond the end of the file (truncated)", id)
	}
	b := make([]byte, r.pageSize)
	if _, err := r.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	if got := le.Uint64(b[0:8]); got != id {
		return nil, fmt.Errorf("page %d: its header names page %d (overwritten or garbled)", id, got)
	}
	if overflow := uint64(le.Uint32(b[12:16])); overflow > 0 {
		if id+overflow >= r.pages || off+int64(overflow+1)*int64(r.pageSize) > r.size {
			return nil, fmt.Errorf("page %d: its %d overflow pages run past the end of the file", id, overflow)
		}
		more := make([]byte, int(overflow)*r.pageSize)
		if _, err := r.f.ReadAt(more, off+int64(r.pageSize)); err != nil {
			return nil, fmt.Errorf("page %d: %w", id, err)
		}
		b = append(b, more...)
	}
	return b, nil
}

type branchElem struct {
	key  []byte
	page uint64
}

type leafElem struct {
	bucket     bool
	key, value []byte
}

// elements splits a page into its elements, checking every offset.
func elements(b []byte) (flags uint16, branches []branchElem, leaves []leafElem, err error) {
	if len(b) < pageHeaderSize {
		return 0, nil, nil, errors.New("shorter than a page header")
	}
	flags = le.Uint16(b[8:10])
	count := int(le.Uint16(b[10:12]))
	if pageHeaderSize+count*elementSize > len(b) {
		return flags, nil, nil, fmt.Errorf("%d elements do not fit in the page", count)
	}
	for i := 0; i < count; i++ {
		at := pageHeaderSize + i*elementSize
		e := b[at : at+elementSize]
		switch flags {
		case branchPageFlag:
			pos, ksize := int(le.Uint32(e[0:4])), int(le.Uint32(e[4:8]))
			if pos < 0 || ksize < 0 || at+pos+ksize > len(b) || at+pos+ksize < at {
				return flags, nil, nil, fmt.Errorf("element %d: key outside the page", i)
			}
			branches = append(branches, branchElem{key: b[at+pos : at+pos+ksize], page: le.Uint64(e[8:16])})
		case leafPageFlag:
			pos, ksize, vsize := int(le.Uint32(e[4:8])), int(le.Uint32(e[8:12])), int(le.Uint32(e[12:16]))
			end := at + pos + ksize + vsize
			if pos < 0 || ksize < 0 || vsize < 0 || end > len(b) || end < at {
				return flags, nil, nil, fmt.Errorf("element %d: key or value outside the page", i)
			}
			k := at + pos
			leaves = append(leaves, leafElem{bucket: le.Uint32(e[0:4])&bucketLeafFlag != 0,
				key: b[k : k+ksize], value: b[k+ksize : end]})
		default:
			return flags, nil, nil, fmt.Errorf("neither a branch nor a leaf page (flags %#x)", flags)
		}
	}
	return flags, branches, leaves, nil
}

// walker visits every bucket and key reachable from the root, reporting
// what it cannot read and carrying on with the rest.
type walker struct {
	r    *pageReader
	seen map[uint64]bool
	keys map[string]int // per bucket path
	// space adds up, per bucket path, the pages of its tree and the bytes
	// of its own keys and values (nil: not counted).
	space   map[string]*BucketSpace
	problem func(bucket string, err error)
	// bucket is called on entering a bucket, put for each key; either may
	// be nil. path names the bucket from the top.
	bucket func(path [][]byte, sequence uint64) error
	put    func(path [][]byte, key, value []byte) error
}

func pathName(path [][]byte) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = fmt.Sprintf("%q", p)
	}
	if len(parts) == 0 {
		return "(root)"
	}
	return strings.Join(parts, "/")
}

// walkTree walks the tree of the bucket at path, rooted at page id.
func (w *walker) walkTree(path [][]byte, id uint64, depth int) error {
	if depth > maxTreeDepth {
		w.problem(pathName(path), fmt.Errorf("page %d: tree deeper than %d levels (a loop?)", id, maxTreeDepth))
		return nil
	}
	if w.seen[id] {
		w.problem(pathName(path), fmt.Errorf("page %d: reached twice (pages shared or looped)", id))
		return nil
	}
	w.seen[id] = true
	b, err := w.r.read(id)
	if err != nil {
		w.problem(pathName(path), err)
		return nil
	}
	if sp := w.spaceOf(path); sp != nil {
		sp.PageBytes += int64(len(b)) // with its overflow pages
	}
	return w.walkPage(path, id, b, depth)
}

func (w *walker) walkPage(path [][]byte, id uint64, b []byte, depth int) error {
	flags, branches, leaves, err := elements(b)
	if err != nil {
		w.problem(pathName(path), fmt.Errorf("page %d: %w", id, err))
		return nil
	}
	if flags == branchPageFlag {
		for _, e := range branches {
			if err := w.walkTree(path, e.page, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	for _, e := range leaves {
		if !e.bucket {
			if len(path) == 0 {
				w.problem(pathName(path), fmt.Errorf("page %d: a plain key %q at the top, where only buckets live", id, e.key))
				continue
			}
			w.keys[pathName(path)]++
			if sp := w.spaceOf(path); sp != nil {
				sp.KeyValueBytes += int64(len(e.key) + len(e.value))
			}
			if w.put != nil {
				if err := w.put(path, e.key, e.value); err != nil {
					return err
				}
			}
			continue
		}
		child := append(append([][]byte(nil), path...), e.key)
		if len(e.value) < bucketHeaderSize {
			w.problem(pathName(child), fmt.Errorf("page %d: bucket header too short", id))
			continue
		}
		if _, ok := w.keys[pathName(child)]; !ok {
			w.keys[pathName(child)] = 0
		}
		if w.bucket != nil {
			if err := w.bucket(child, le.Uint64(e.value[8:16])); err != nil {
				return err
			}
		}
		if root := le.Uint64(e.value[0:8]); root != 0 {
			if err := w.walkTree(child, root, depth+1); err != nil {
				return err
			}
			continue
		}
		// An inline bucket: its one leaf page follows the header.
		if err := w.walkPage(child, id, e.value[bucketHeaderSize:], depth+1); err != nil {
			return err
		}
	}
	return nil
}

// spaceOf returns the space counted for the bucket at path, nil when
// space is not counted or path is the root.
func (w *walker) spaceOf(path [][]byte) *BucketSpace {
	if w.space == nil || len(path) == 0 {
		return nil
	}
	n := pathName(path)
	sp := w.space[n]
	if sp == nil {
		sp = &BucketSpace{}
		w.space[n] = sp
	}
	return sp
}

// BucketSpace is what one bucket takes in the file: the pages of its tree
// (an inline bucket's live in its parent's page) and its keys and values,
// so that their difference is the pages' headers and unused room. A nested
// bucket's pages count for it, not for its parent.
type BucketSpace struct {
	PageBytes, KeyValueBytes int64
}

// Report is what a check found in a database file.
type Report struct {
	Path     string
	Size     int64
	PageSize int
	Pages    uint64 // pages in use (the high-water mark)
	TxID     uint64 // the transaction the meta page used describes
	// Meta says, for each meta page, "ok, transaction N" or what is wrong.
	Meta [2]string
	// Keys counts the keys read in each bucket.
	Keys map[string]int
	// Space is what each bucket takes in the file.
	Space map[string]*BucketSpace
	// Schema is Kadenz's schema version stored in the file, "" if unread.
	Schema string
	// Problems lists every damage found, in plain words; none means the
	// file is sound as far as its structure shows.
	Problems []string
}

// OK reports whether the check found no damage.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// String is the report for a person.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "database %s: %d bytes", r.Path, r.Size)
	if r.PageSize > 0 {
		fmt.Fprintf(&b, ", page size %d, %d pages in use, transaction %d", r.PageSize, r.Pages, r.TxID)
	}
	fmt.Fprintf(&b, "\n  meta page 0: %s\n  meta page 1: %s\n", r.Meta[0], r.Meta[1])
	if r.Schema != "" {
		fmt.Fprintf(&b, "  schema version: %s\n", r.Schema)
	}
	names := make([]string, 0, len(r.Keys))
	for n := range r.Keys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  bucket %s: %d keys read", n, r.Keys[n])
		if sp := r.Space[n]; sp != nil && sp.PageBytes > 0 {
			fmt.Fprintf(&b, "; %d bytes of pages, %d of keys and values (%.0f%%)", sp.PageBytes, sp.KeyValueBytes,
				100*float64(sp.KeyValueBytes)/float64(sp.PageBytes))
		}
		b.WriteByte('\n')
	}
	if r.OK() {
		b.WriteString("no damage found\n")
		return b.String()
	}
	fmt.Fprintf(&b, "%d problems:\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  - %s\n", p)
	}
	return b.String()
}

// Check reads the database file at path without bbolt and reports its
// state. It never writes, never maps the file and never panics on bad
// input; the error is for a file it could not open at all, or one a
// running kadenz holds.
func Check(path string) (*Report, error) {
	f, size, done, err := openForReading(path)
	if err != nil {
		return nil, err
	}
	defer done()
	rep := &Report{Path: path, Size: size, Keys: map[string]int{}, Space: map[string]*BucketSpace{}}
	_, _, err = walkFile(f, size, rep, nil, nil)
	return rep, err
}

// openForReading opens a database file to read it without bbolt, under a
// shared lock (a running kadenz's file is being rewritten: its exclusive
// lock makes this fail instead). done unlocks and closes.
func openForReading(path string) (f *os.File, size int64, done func(), err error) {
	unlock, err := lockShared(path)
	if err != nil {
		return nil, 0, nil, err
	}
	if f, err = os.Open(path); err != nil {
		unlock()
		return nil, 0, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		unlock()
		return nil, 0, nil, err
	}
	return f, fi.Size(), func() { f.Close(); unlock() }, nil
}

// walkFile checks the meta pages, then walks the tree from the chosen
// meta, filling rep and calling the visitor functions (which may be nil).
// It returns the meta it walked from and the walker (nil if there was no
// tree to walk), which knows the pages it reached.
func walkFile(f io.ReaderAt, size int64, rep *Report,
	bucket func([][]byte, uint64) error, put func([][]byte, []byte, []byte) error) (used meta, w *walker, err error) {
	defer func() {
		// The reader checks every offset; this is the last line, so that a
		// case we missed is a problem in the report, not a crash.
		if p := recover(); p != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("the check itself failed: %v", p))
		}
	}()
	if size == 0 {
		rep.Problems = append(rep.Problems, "the file is empty (zero bytes)")
		rep.Meta = [2]string{"missing", "missing"}
		return used, nil, nil
	}
	metas, pageSize := readMetas(f, size)
	for i, m := range metas {
		if m.err != nil {
			rep.Meta[i] = m.err.Error()
		} else {
			rep.Meta[i] = fmt.Sprintf("ok, transaction %d", m.txid)
		}
	}
	switch {
	case metas[0].err != nil && metas[1].err != nil:
		rep.Problems = append(rep.Problems, "neither meta page is valid: the file is not a readable bbolt database")
		return used, nil, nil
	case metas[0].err == nil && metas[1].err == nil:
		used = metas[0]
		if metas[1].txid > used.txid {
			used = metas[1]
		}
	default:
		// bbolt would open the file from the valid meta page alone. It
		// writes the two pages in turn, so the valid one describes either
		// the last transaction or the one before it, and which cannot be
		// known from a garbled page. A meta page is one sector, written
		// whole, so a crash does not leave it garbled: this is damage, and
		// the transaction it may have cost held mail acknowledged with 250.
		bad := 0
		if metas[0].err == nil {
			used, bad = metas[0], 1
		} else {
			used = metas[1]
		}
		rep.Problems = append(rep.Problems, fmt.Sprintf(
			"meta page %d is damaged (%v): the file may have lost its last committed transaction; meta page %d (transaction %d) is readable",
			bad, metas[bad].err, 1-bad, used.txid))
	}
	rep.PageSize, rep.Pages, rep.TxID = pageSize, used.pages, used.txid
	if need := int64(used.pages) * int64(pageSize); size < need {
		rep.Problems = append(rep.Problems, fmt.Sprintf(
			"the file is %d bytes but its meta page says %d pages of %d bytes (%d bytes): truncated", size, used.pages, pageSize, need))
	}
	w = &walker{
		r:      &pageReader{f: f, size: size, pageSize: pageSize, pages: used.pages},
		seen:   map[uint64]bool{},
		keys:   rep.Keys,
		space:  rep.Space,
		bucket: bucket,
		problem: func(b string, err error) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("bucket %s: %v", b, err))
		},
		put: func(path [][]byte, k, v []byte) error {
			if len(path) == 1 && string(path[0]) == string(bucketMeta) && string(k) == "schema" {
				rep.Schema = string(v)
			}
			if put != nil {
				return put(path, k, v)
			}
			return nil
		},
	}
	return used, w, w.walkTree(nil, used.root, 0)
}

// DamagedError is a database Kadenz will not open: damaged, or missing or
// empty where a database used to be. It says what to do.
type DamagedError struct {
	Path   string
	Reason string
	Report *Report // nil when the file is missing
}

func (e *DamagedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "store: refusing to open %s: %s.\n", e.Path, e.Reason)
	if e.Report != nil {
		b.WriteString(e.Report.String())
	}
	dir := filepath.Dir(e.Path)
	fmt.Fprintf(&b, "Kadenz has not opened or changed the file. What to do:\n"+
		"  - restore the latest backup (kadenz db backup) to %s, or\n"+
		"  - run 'kadenz db recover --data %s RECOVERED.db' to copy what can be read into a new file and see what was lost,\n"+
		"    then move RECOVERED.db to %s (keep the damaged file for inspection);\n"+
		"  - to start afresh on purpose, losing all held mail, remove %s as well.\n",
		e.Path, dir, e.Path, filepath.Join(dir, MarkerName))
	return b.String()
}

// checkBeforeOpen decides whether the file at path may be opened: a
// missing or empty file is a first start only without the marker, and an
// existing file must pass Check.
func checkBeforeOpen(path string) error {
	marker := filepath.Join(filepath.Dir(path), MarkerName)
	_, markerErr := os.Stat(marker)
	hadData := markerErr == nil
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if hadData {
			return &DamagedError{Path: path, Reason: "the database file is missing, but " + MarkerName + " says this data directory held one"}
		}
		return nil
	case err != nil:
		return fmt.Errorf("store: %w", err)
	case fi.Size() == 0:
		if hadData {
			return &DamagedError{Path: path, Reason: "the database file is empty (zero bytes), but " + MarkerName + " says this data directory held one"}
		}
		return nil
	}
	rep, err := Check(path)
	if err != nil {
		return fmt.Errorf("store: checking %s: %w", path, err)
	}
	if !rep.OK() {
		return &DamagedError{Path: path, Reason: "it is damaged", Report: rep}
	}
	if rep.Schema == "" && hadData {
		return &DamagedError{Path: path, Reason: "it holds no Kadenz data, but " + MarkerName + " says this data directory did", Report: rep}
	}
	return nil
}

// writeMarker records that the data directory holds a database.
func writeMarker(path string) error {
	marker := filepath.Join(filepath.Dir(path), MarkerName)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	text := fmt.Sprintf("Kadenz created %s here on %s.\n"+
		"While this file exists, kadenz refuses to start if %s is missing or empty\n"+
		"instead of silently starting with no mail. Remove it only to start afresh on purpose.\n",
		filepath.Base(path), time.Now().UTC().Format(time.RFC3339), filepath.Base(path))
	tmp := marker + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o640); err != nil {
		return err
	}
	if err := os.Rename(tmp, marker); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
