package engine

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf8"

	"kadenz/scoring"
)

// appendRecordJSON appends rec as json.Marshal writes it, byte for byte,
// and fails where Marshal fails (a number that is not finite, a time
// outside years 0-9999).
//
// Why by hand: the engine writes a record for every envelope it decides,
// and at a campaign's scale Marshal's reflection was 4% of the decider's
// CPU (issue 16). The stored bytes do not change, so every reader of the
// records (explain, the dashboard, the tallies' scanner, exports, older
// releases) reads them as before. TestRecordJSONIsMarshal compares the two
// on random records, every field of Record and scoring.Numbers filled by
// reflection, so a field added to either and not here fails it.
func appendRecordJSON(b []byte, rec *Record) ([]byte, error) {
	var err error
	b = append(b, `{"decided_at":`...)
	if b, err = appendTimeJSON(b, rec); err != nil {
		return nil, err
	}
	b = append(b, `,"mode":`...)
	b = appendStringJSON(b, rec.Mode)
	b = append(b, `,"action":`...)
	b = appendStringJSON(b, rec.Action)
	if rec.Would != "" {
		b = append(b, `,"would":`...)
		b = appendStringJSON(b, rec.Would)
	}
	if !rec.At.IsZero() {
		b = append(b, `,"at":"`...)
		if b, err = rec.At.AppendText(b); err != nil {
			return nil, errors.New("Time.MarshalJSON: " + err.Error())
		}
		b = append(b, '"')
	}
	if len(rec.Reasons) > 0 {
		b = append(b, `,"reasons":[`...)
		for i, r := range rec.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStringJSON(b, r)
		}
		b = append(b, ']')
	}
	if n := rec.Numbers; n != nil {
		b = append(b, `,"numbers":`...)
		if b, err = appendNumbersJSON(b, n); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"explanation":`...)
	b = appendStringJSON(b, rec.Explanation)
	return append(b, '}'), nil
}

func appendTimeJSON(b []byte, rec *Record) ([]byte, error) {
	b = append(b, '"')
	b, err := rec.DecidedAt.AppendText(b)
	if err != nil {
		return nil, errors.New("Time.MarshalJSON: " + err.Error())
	}
	return append(b, '"'), nil
}

func appendNumbersJSON(b []byte, n *scoring.Numbers) ([]byte, error) {
	fields := [...]struct {
		key string
		v   float64
	}{
		{`{"Affinity":`, n.Affinity}, {`,"PopulationRate":`, n.PopulationRate}, {`,"Priority":`, n.Priority},
		{`,"Novelty":`, n.Novelty}, {`,"Freshness":`, n.Freshness}, {`,"TimeLift":`, n.TimeLift},
		{`,"Delay":`, n.Delay}, {`,"Value":`, n.Value}, {`,"Volume":`, n.Volume},
		{`,"Sensitivity":`, n.Sensitivity}, {`,"Comfort":`, n.Comfort}, {`,"CustomerValue":`, n.CustomerValue},
		{`,"Cost":`, n.Cost},
	}
	var ok bool
	for _, f := range fields {
		b = append(b, f.key...)
		if b, ok = appendFloatJSON(b, f.v); !ok {
			return nil, errNotFinite
		}
	}
	b = append(b, `,"NearestBits":`...)
	b = strconv.AppendInt(b, int64(n.NearestBits), 10)
	b = append(b, `,"IgnoredStreak":`...)
	b = strconv.AppendInt(b, int64(n.IgnoredStreak), 10)
	b = append(b, `,"SinceLastRelease":`...)
	b = strconv.AppendInt(b, int64(n.SinceLastRelease), 10)
	b = append(b, `,"Draw":`...)
	if b, ok = appendFloatJSON(b, n.Draw); !ok {
		return nil, errNotFinite
	}
	if c := n.Content; c != nil {
		b = append(b, `,"Content":{"Term":`...)
		b = appendStringJSON(b, c.Term)
		for _, f := range [...]struct {
			key string
			v   float64
		}{{`,"Sends":`, c.Sends}, {`,"Opens":`, c.Opens}, {`,"Clicks":`, c.Clicks}} {
			b = append(b, f.key...)
			if b, ok = appendFloatJSON(b, f.v); !ok {
				return nil, errNotFinite
			}
		}
		b = append(b, '}')
	}
	b = append(b, `,"Campaign":`...)
	if b, ok = appendFloatJSON(b, n.Campaign); !ok {
		return nil, errNotFinite
	}
	if c := n.CampaignNote; c != nil {
		for _, f := range [...]struct {
			key string
			v   float64
		}{{`,"CampaignNote":{"Read":`, c.Read}, {`,"Opens":`, c.Opens}, {`,"Clicks":`, c.Clicks},
			{`,"Stops":`, c.Stops}, {`,"Rate":`, c.Rate}, {`,"SenderRate":`, c.SenderRate}} {
			b = append(b, f.key...)
			if b, ok = appendFloatJSON(b, f.v); !ok {
				return nil, errNotFinite
			}
		}
		b = append(b, `,"Exploring":`...)
		b = strconv.AppendBool(b, c.Exploring)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

var errNotFinite = errors.New("json: unsupported value: a number that is not finite")

// appendFloatJSON writes f as encoding/json writes a float64 (its
// floatEncoder: ES6 number formatting); false for NaN and infinities,
// which JSON cannot hold.
func appendFloatJSON(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 as e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendStringJSON writes s as encoding/json writes a string (HTML
// characters escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped).
func appendStringJSON(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
