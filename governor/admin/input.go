package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"kadenz/governor/address"
)

// Input checks shared by the admin API's handlers: JSON decoding that
// refuses what encoding/json would quietly accept, addresses, identifiers
// and times. Every problem is a 400 naming the field; nothing a client
// sends reaches the store unchecked (a 40 KB "address" used to answer 500
// "key too large" from bbolt).

// Limits on identifiers a client hands us to look things up by.
const (
	// maxLookupID bounds envelope and Kadenz message IDs (ours are far
	// shorter) and event IDs.
	maxLookupID = 200
	// maxHeaderID bounds a Message-ID: it fits on one header line
	// (RFC 5322 section 2.1.1, 998 characters).
	maxHeaderID = 998
	maxTopic    = 100
	maxURL      = 8 << 10
	maxReason   = 500
)

// earliestTime is the earliest timestamp the API accepts for an event or a
// suppression: nothing about a mailing list is older. A zero or year-1
// time is a client's bug, not history.
var earliestTime = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)

// futureSkew is how far ahead of the relay's clock a timestamp may be:
// clocks differ a little; an event from tomorrow is a mistake.
const futureSkew = time.Hour

// fieldError is a bad value in a named field of a request.
type fieldError struct {
	Field, Reason string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Reason }

func badField(field, format string, args ...any) *fieldError {
	return &fieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// decodeStrict decodes one JSON value into v: unknown fields, duplicate
// keys (which encoding/json resolves silently to the last) and trailing
// data are errors.
func decodeStrict(data []byte, v any) error {
	if err := checkDuplicateKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// readStrict reads a body of at most limit bytes and decodes it strictly.
func readStrict(rd io.Reader, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("body over %d bytes", limit)
	}
	return decodeStrict(data, v)
}

// checkDuplicateKeys reports the first object key that appears twice in
// one object, anywhere in data. Invalid JSON is left for the decoder to
// report.
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type object struct {
		keys      map[string]bool
		expectKey bool
	}
	var stack []*object // nil entries are arrays
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // EOF, or a syntax error the decoder will name
		}
		var top *object
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.expectKey {
			if key, ok := tok.(string); ok {
				if top.keys[key] {
					return &duplicateKeyError{Key: key}
				}
				top.keys[key] = true
				top.expectKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &object{keys: map[string]bool{}, expectKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, nil)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: the enclosing object expects a key next.
		if len(stack) > 0 && stack[len(stack)-1] != nil {
			stack[len(stack)-1].expectKey = true
		}
	}
}

// duplicateKeyError names a key given twice in one JSON object.
type duplicateKeyError struct{ Key string }

func (e *duplicateKeyError) Error() string {
	return fmt.Sprintf("duplicate key %s: give each field once", quoteInput(e.Key))
}

// checkAddress checks an address a client sent in field: RFC 5321 syntax
// and lengths (governor/address), UTF-8 allowed. It returns the address
// trimmed of surrounding spaces.
func checkAddress(field, s string) (string, *fieldError) {
	s = strings.TrimSpace(s)
	if err := address.Check(s, true); err != nil {
		var ae *address.Error
		if errors.As(err, &ae) {
			return "", badField(field, "%s is not an email address: %s", quoteInput(s), ae.Reason)
		}
		return "", badField(field, "%v", err)
	}
	return s, nil
}

// checkText checks a free-text or identifier field: valid UTF-8, at most
// max bytes, no control characters.
func checkText(field, s string, max int) *fieldError {
	if len(s) > max {
		return badField(field, "longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return badField(field, "not valid UTF-8")
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		c, _ := utf8.DecodeRuneInString(s[i:])
		return badField(field, "control character %q at byte %d", c, i)
	}
	return nil
}

// checkTime checks a client's timestamp against the relay's clock.
func checkTime(field string, t, now time.Time) *fieldError {
	switch {
	case t.Before(earliestTime):
		return badField(field, "%s is before %d: not a real event", t.Format(time.RFC3339), earliestTime.Year())
	case t.After(now.Add(futureSkew)):
		return badField(field, "%s is in the future (the relay's clock says %s)", t.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	return nil
}

// parseTime parses an RFC 3339 timestamp from field and checks it.
func parseTime(field, s string, now time.Time) (time.Time, *fieldError) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, badField(field, "%s is not RFC 3339, e.g. 2026-11-23T10:00:00Z", quoteInput(s))
	}
	return t, checkTime(field, t, now)
}
